/*
 * TensorRT's side of the plugin interfaces, implemented from the public headers alone.
 *
 * What a plugin receives from TensorRT is either an abstract class it may call (ILogger through
 * ILoggerFinder, IPluginResourceContext) or a thin wrapper whose every method forwards to an
 * abstract implementation class (IExprBuilder -> apiv::VExprBuilder, IDimensionExpr ->
 * apiv::VDimensionExpr, both in NvInferImpl.h). This file implements those classes the way the
 * harness needs them: a logger that keeps what it is told, an expression builder that keeps
 * dimensions symbolic and evaluates them for given sizes, and plugin field storage that emulates
 * how TensorRT's ONNX parser turns node attributes into PluginFields and how an engine plan keeps
 * the fields a plugin serialises.
 */
#ifndef FORNET_HARNESS_TRT_SIDE_H
#define FORNET_HARNESS_TRT_SIDE_H

#include <NvInferRuntime.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace fornet
{
namespace harness
{

std::string dataTypeName(nvinfer1::DataType type);
std::string formatName(nvinfer1::TensorFormat format);
std::string fieldTypeName(nvinfer1::PluginFieldType type);

//! Keeps every message the plugin logs; the harness reads them back to judge error reports.
class CapturingLogger final : public nvinfer1::ILogger
{
public:
    void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override;

    //! Position to pass to errorsSince().
    size_t mark() const noexcept
    {
        return mMessages.size();
    }
    //! Messages of severity kERROR or worse logged since `mark`.
    std::vector<std::string> errorsSince(size_t mark) const;
    //! Print every message to stderr as it arrives.
    void setEcho(bool echo) noexcept
    {
        mEcho = echo;
    }

private:
    struct Message
    {
        Severity severity;
        std::string text;
    };
    std::vector<Message> mMessages;
    bool mEcho{false};
};

//! What TensorRT hands to a plugin library's setLoggerFinder().
class LoggerFinder final : public nvinfer1::ILoggerFinder
{
public:
    explicit LoggerFinder(nvinfer1::ILogger& logger)
        : mLogger(logger)
    {
    }
    ~LoggerFinder() override = default;
    nvinfer1::ILogger* findLogger() override
    {
        return &mLogger;
    }

private:
    nvinfer1::ILogger& mLogger;
};

//! The per-execution-context resources TensorRT passes to attachToContext().
class ResourceContext final : public nvinfer1::IPluginResourceContext
{
public:
    ResourceContext() = default;
    ~ResourceContext() override = default;
    nvinfer1::IGpuAllocator* getGpuAllocator() const noexcept override
    {
        return nullptr;
    }
    nvinfer1::IErrorRecorder* getErrorRecorder() const noexcept override
    {
        return nullptr;
    }
};

//! Values of the symbolic dimensions ("B", "H", "W", ...) for one evaluation.
using Bindings = std::map<std::string, int64_t>;

class ExprNode;
class ExprBuilderFacade;

//! An IExprBuilder whose expressions stay symbolic: constants fold as in TensorRT, everything
//! else is a tree over named symbols that evaluate() computes for given Bindings. Every
//! expression lives as long as the builder; expressions not made by this builder are refused
//! (and recorded as violations), as are invalid operations.
class SymbolicExprBuilder final : public nvinfer1::apiv::VExprBuilder
{
public:
    SymbolicExprBuilder();
    ~SymbolicExprBuilder() override;
    SymbolicExprBuilder(SymbolicExprBuilder const&) = delete;
    SymbolicExprBuilder& operator=(SymbolicExprBuilder const&) = delete;

    // apiv::VExprBuilder
    nvinfer1::IDimensionExpr const* constant(int64_t value) override;
    nvinfer1::IDimensionExpr const* operation(nvinfer1::DimensionOperation op, nvinfer1::IDimensionExpr const& first,
        nvinfer1::IDimensionExpr const& second) override;
    nvinfer1::IDimensionExpr const* declareSizeTensor(
        int32_t outputIndex, nvinfer1::IDimensionExpr const& opt, nvinfer1::IDimensionExpr const& upper) override;

    //! A runtime dimension named `name` (what TensorRT gives for a dynamic input dimension).
    nvinfer1::IDimensionExpr const* symbol(std::string const& name);
    //! The builder as the plugin sees it.
    nvinfer1::IExprBuilder& facade() noexcept;
    //! Whether `expr` was made by this builder.
    bool owns(nvinfer1::IDimensionExpr const* expr) const noexcept;
    //! The value of `expr` for `bindings`; empty for a foreign expression, an unbound symbol, a
    //! size tensor or a division by zero.
    std::optional<int64_t> evaluate(nvinfer1::IDimensionExpr const* expr, Bindings const& bindings) const;
    //! `expr` written out, e.g. "(B * 4)".
    std::string describe(nvinfer1::IDimensionExpr const* expr) const;
    //! What the plugin did that TensorRT would not accept (foreign expressions, bad operations).
    std::vector<std::string> const& violations() const noexcept
    {
        return mViolations;
    }

private:
    ExprNode const* node(nvinfer1::IDimensionExpr const* expr) const noexcept;
    nvinfer1::IDimensionExpr const* add(std::unique_ptr<ExprNode> node);

    std::vector<std::unique_ptr<ExprNode>> mNodes;
    std::unordered_map<nvinfer1::IDimensionExpr const*, ExprNode const*> mByFacade;
    std::vector<std::string> mViolations;
    std::unique_ptr<ExprBuilderFacade> mFacade;
};

//! Plugin fields with storage the harness owns (the fields a parser or a plan hands over).
class FieldSet
{
public:
    FieldSet() = default;
    FieldSet(FieldSet const& other);
    FieldSet& operator=(FieldSet const&) = delete;

    void addFloats(std::string const& name, std::vector<float> const& values);
    void addDoubles(std::string const& name, std::vector<double> const& values);
    void addInts(std::string const& name, std::vector<int32_t> const& values);
    void addInt64s(std::string const& name, std::vector<int64_t> const& values);
    void addChars(std::string const& name, std::string const& text);
    //! A field with exactly these members (for malformed fields: null data, negative length).
    void addRaw(std::string const& name, void const* data, nvinfer1::PluginFieldType type, int32_t length);

    //! The collection to pass to createPlugin (valid until the next add or the set's end).
    nvinfer1::PluginFieldCollection const* collection();
    //! A deep copy of `fc`, as an engine plan keeps the fields a plugin serialises; empty with
    //! `error` set when a field cannot be copied (unknown type, null data, negative length).
    static std::optional<FieldSet> copyOf(nvinfer1::PluginFieldCollection const* fc, std::string& error);
    //! One line per field: name, type, length and the values (canonical, for comparisons).
    static std::string describe(nvinfer1::PluginFieldCollection const* fc);

private:
    struct Stored
    {
        std::string name;
        std::vector<uint8_t> bytes;
        nvinfer1::PluginFieldType type;
        int32_t length;
        void const* rawData;
        bool raw;
    };
    void add(std::string const& name, void const* data, size_t bytes, nvinfer1::PluginFieldType type, int32_t length);

    std::deque<Stored> mStored;
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

//! Bytes one element of a field of `type` takes; 0 when the harness does not know the type.
size_t fieldElementSize(nvinfer1::PluginFieldType type) noexcept;

} // namespace harness
} // namespace fornet

#endif // FORNET_HARNESS_TRT_SIDE_H
