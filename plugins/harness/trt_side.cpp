/*
 * TensorRT's side of the plugin interfaces (see trt_side.h).
 */
#include "trt_side.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>
#include <utility>

namespace fornet
{
namespace harness
{

using nvinfer1::DataType;
using nvinfer1::DimensionOperation;
using nvinfer1::IDimensionExpr;
using nvinfer1::PluginFieldType;
using nvinfer1::TensorFormat;

std::string dataTypeName(DataType type)
{
    static char const* const kNames[] = {"kFLOAT", "kHALF", "kINT8", "kINT32", "kBOOL", "kUINT8", "kFP8", "kBF16",
        "kINT64", "kINT4", "kFP4", "kE8M0"};
    auto const index = static_cast<size_t>(type);
    return index < sizeof(kNames) / sizeof(kNames[0]) ? kNames[index] : "DataType(" + std::to_string(index) + ")";
}

std::string formatName(TensorFormat format)
{
    static char const* const kNames[] = {"kLINEAR", "kCHW2", "kHWC8", "kCHW4", "kCHW16", "kCHW32", "kDHWC8",
        "kCDHW32", "kHWC", "kDLA_LINEAR", "kDLA_HWC4", "kHWC16", "kDHWC"};
    auto const index = static_cast<size_t>(format);
    return index < sizeof(kNames) / sizeof(kNames[0]) ? kNames[index] : "TensorFormat(" + std::to_string(index) + ")";
}

std::string fieldTypeName(PluginFieldType type)
{
    static char const* const kNames[] = {"kFLOAT16", "kFLOAT32", "kFLOAT64", "kINT8", "kINT16", "kINT32", "kCHAR",
        "kDIMS", "kUNKNOWN", "kBF16", "kINT64", "kFP8", "kINT4", "kFP4"};
    auto const index = static_cast<size_t>(type);
    return index < sizeof(kNames) / sizeof(kNames[0]) ? kNames[index]
                                                      : "PluginFieldType(" + std::to_string(index) + ")";
}

// ------------------------------------------------------------------------------------------ logger

void CapturingLogger::log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept
{
    try
    {
        mMessages.push_back({severity, msg != nullptr ? msg : "(null message)"});
        if (mEcho)
        {
            std::fprintf(stderr, "[plugin log %d] %s\n", static_cast<int>(severity), mMessages.back().text.c_str());
        }
    }
    catch (...)
    {
        std::fprintf(stderr, "harness: out of memory while logging\n");
    }
}

std::vector<std::string> CapturingLogger::errorsSince(size_t mark) const
{
    std::vector<std::string> errors;
    for (size_t i = mark; i < mMessages.size(); ++i)
    {
        if (mMessages[i].severity <= Severity::kERROR)
        {
            errors.push_back(mMessages[i].text);
        }
    }
    return errors;
}

// ------------------------------------------------------------------------------------- expressions

//! The IExprBuilder a plugin receives: a wrapper around SymbolicExprBuilder.
class ExprBuilderFacade final : public nvinfer1::IExprBuilder
{
public:
    explicit ExprBuilderFacade(nvinfer1::apiv::VExprBuilder* impl)
    {
        mImpl = impl;
    }
    ~ExprBuilderFacade() override = default;
};

namespace
{

//! The IDimensionExpr a plugin holds: a wrapper whose implementation is an ExprNode.
class DimensionExprFacade final : public IDimensionExpr
{
public:
    explicit DimensionExprFacade(nvinfer1::apiv::VDimensionExpr* impl)
    {
        mImpl = impl;
    }
    ~DimensionExprFacade() override = default;
};

char const* operationSymbol(DimensionOperation op)
{
    switch (op)
    {
    case DimensionOperation::kSUM: return "+";
    case DimensionOperation::kPROD: return "*";
    case DimensionOperation::kMAX: return "max";
    case DimensionOperation::kMIN: return "min";
    case DimensionOperation::kSUB: return "-";
    case DimensionOperation::kEQUAL: return "==";
    case DimensionOperation::kLESS: return "<";
    case DimensionOperation::kFLOOR_DIV: return "floordiv";
    case DimensionOperation::kCEIL_DIV: return "ceildiv";
    }
    return nullptr;
}

std::optional<int64_t> apply(DimensionOperation op, int64_t a, int64_t b)
{
    switch (op)
    {
    case DimensionOperation::kSUM: return a + b;
    case DimensionOperation::kPROD: return a * b;
    case DimensionOperation::kMAX: return a > b ? a : b;
    case DimensionOperation::kMIN: return a < b ? a : b;
    case DimensionOperation::kSUB: return a - b;
    case DimensionOperation::kEQUAL: return a == b ? 1 : 0;
    case DimensionOperation::kLESS: return a < b ? 1 : 0;
    case DimensionOperation::kFLOOR_DIV:
    {
        if (b == 0)
        {
            return std::nullopt;
        }
        int64_t quotient = a / b;
        if ((a % b != 0) && ((a < 0) != (b < 0)))
        {
            --quotient;
        }
        return quotient;
    }
    case DimensionOperation::kCEIL_DIV:
    {
        if (b == 0)
        {
            return std::nullopt;
        }
        int64_t quotient = a / b;
        if ((a % b != 0) && ((a < 0) == (b < 0)))
        {
            ++quotient;
        }
        return quotient;
    }
    }
    return std::nullopt;
}

} // namespace

//! One expression: a constant, a named symbol, an operation over two nodes, or a size tensor.
class ExprNode final : public nvinfer1::apiv::VDimensionExpr
{
public:
    enum class Kind
    {
        kCONSTANT,
        kSYMBOL,
        kOPERATION,
        kSIZE_TENSOR
    };

    ExprNode(Kind kind, int64_t value, std::string symbol, DimensionOperation op, ExprNode const* first,
        ExprNode const* second)
        : mKind(kind)
        , mValue(value)
        , mSymbol(std::move(symbol))
        , mOp(op)
        , mFirst(first)
        , mSecond(second)
        , mFacade(this)
    {
    }

    bool isConstant() const override
    {
        return mKind == Kind::kCONSTANT;
    }
    int64_t getConstantValue() const override
    {
        return mKind == Kind::kCONSTANT ? mValue : std::numeric_limits<int64_t>::min();
    }
    bool isSizeTensor() const override
    {
        return mKind == Kind::kSIZE_TENSOR;
    }

    IDimensionExpr const* facade() const noexcept
    {
        return &mFacade;
    }

    std::optional<int64_t> evaluate(Bindings const& bindings) const
    {
        switch (mKind)
        {
        case Kind::kCONSTANT: return mValue;
        case Kind::kSYMBOL:
        {
            auto const found = bindings.find(mSymbol);
            return found == bindings.end() ? std::nullopt : std::optional<int64_t>{found->second};
        }
        case Kind::kOPERATION:
        {
            auto const a = mFirst->evaluate(bindings);
            auto const b = mSecond->evaluate(bindings);
            return a && b ? apply(mOp, *a, *b) : std::nullopt;
        }
        case Kind::kSIZE_TENSOR: return std::nullopt;
        }
        return std::nullopt;
    }

    std::string describe() const
    {
        switch (mKind)
        {
        case Kind::kCONSTANT: return std::to_string(mValue);
        case Kind::kSYMBOL: return mSymbol;
        case Kind::kOPERATION:
            return "(" + mFirst->describe() + " " + operationSymbol(mOp) + " " + mSecond->describe() + ")";
        case Kind::kSIZE_TENSOR: return "size_tensor(" + mSymbol + ")";
        }
        return "?";
    }

private:
    Kind mKind;
    int64_t mValue;
    std::string mSymbol;
    DimensionOperation mOp;
    ExprNode const* mFirst;
    ExprNode const* mSecond;
    DimensionExprFacade mFacade;
};

SymbolicExprBuilder::SymbolicExprBuilder()
    : mFacade(std::make_unique<ExprBuilderFacade>(this))
{
}

SymbolicExprBuilder::~SymbolicExprBuilder() = default;

nvinfer1::IExprBuilder& SymbolicExprBuilder::facade() noexcept
{
    return *mFacade;
}

IDimensionExpr const* SymbolicExprBuilder::add(std::unique_ptr<ExprNode> node)
{
    IDimensionExpr const* const facade = node->facade();
    mByFacade.emplace(facade, node.get());
    mNodes.push_back(std::move(node));
    return facade;
}

ExprNode const* SymbolicExprBuilder::node(IDimensionExpr const* expr) const noexcept
{
    auto const found = mByFacade.find(expr);
    return found == mByFacade.end() ? nullptr : found->second;
}

bool SymbolicExprBuilder::owns(IDimensionExpr const* expr) const noexcept
{
    return node(expr) != nullptr;
}

IDimensionExpr const* SymbolicExprBuilder::constant(int64_t value)
{
    return add(std::make_unique<ExprNode>(ExprNode::Kind::kCONSTANT, value, "", DimensionOperation::kSUM, nullptr,
        nullptr));
}

IDimensionExpr const* SymbolicExprBuilder::symbol(std::string const& name)
{
    return add(std::make_unique<ExprNode>(ExprNode::Kind::kSYMBOL, 0, name, DimensionOperation::kSUM, nullptr,
        nullptr));
}

IDimensionExpr const* SymbolicExprBuilder::operation(
    DimensionOperation op, IDimensionExpr const& first, IDimensionExpr const& second)
{
    ExprNode const* const a = node(&first);
    ExprNode const* const b = node(&second);
    if (a == nullptr || b == nullptr)
    {
        mViolations.push_back("operation() on an expression that this builder did not make");
        return nullptr;
    }
    if (operationSymbol(op) == nullptr)
    {
        mViolations.push_back("operation() with an invalid DimensionOperation " + std::to_string(static_cast<int>(op)));
        return nullptr;
    }
    if (a->isConstant() && b->isConstant())
    {
        auto const folded = apply(op, a->getConstantValue(), b->getConstantValue());
        if (!folded)
        {
            mViolations.push_back("operation() divides by the constant 0");
            return nullptr;
        }
        return constant(*folded);
    }
    return add(std::make_unique<ExprNode>(ExprNode::Kind::kOPERATION, 0, "", op, a, b));
}

IDimensionExpr const* SymbolicExprBuilder::declareSizeTensor(
    int32_t outputIndex, IDimensionExpr const& opt, IDimensionExpr const& upper)
{
    if (node(&opt) == nullptr || node(&upper) == nullptr)
    {
        mViolations.push_back("declareSizeTensor() with an expression that this builder did not make");
        return nullptr;
    }
    return add(std::make_unique<ExprNode>(ExprNode::Kind::kSIZE_TENSOR, 0, "output " + std::to_string(outputIndex),
        DimensionOperation::kSUM, nullptr, nullptr));
}

std::optional<int64_t> SymbolicExprBuilder::evaluate(IDimensionExpr const* expr, Bindings const& bindings) const
{
    ExprNode const* const found = node(expr);
    return found == nullptr ? std::nullopt : found->evaluate(bindings);
}

std::string SymbolicExprBuilder::describe(IDimensionExpr const* expr) const
{
    if (expr == nullptr)
    {
        return "(null)";
    }
    ExprNode const* const found = node(expr);
    return found == nullptr ? "(foreign expression)" : found->describe();
}

// ----------------------------------------------------------------------------------------- fields

size_t fieldElementSize(PluginFieldType type) noexcept
{
    switch (type)
    {
    case PluginFieldType::kFLOAT16:
    case PluginFieldType::kINT16:
    case PluginFieldType::kBF16: return 2;
    case PluginFieldType::kFLOAT32:
    case PluginFieldType::kINT32: return 4;
    case PluginFieldType::kFLOAT64:
    case PluginFieldType::kINT64: return 8;
    case PluginFieldType::kINT8:
    case PluginFieldType::kCHAR:
    case PluginFieldType::kUNKNOWN:
    case PluginFieldType::kFP8: return 1;
    case PluginFieldType::kDIMS: return sizeof(nvinfer1::Dims);
    default: return 0; // packed 4-bit types: the harness never needs them
    }
}

FieldSet::FieldSet(FieldSet const& other)
    : mStored(other.mStored)
{
}

void FieldSet::add(std::string const& name, void const* data, size_t bytes, PluginFieldType type, int32_t length)
{
    Stored stored{name, std::vector<uint8_t>(bytes), type, length, nullptr, false};
    if (bytes > 0)
    {
        std::memcpy(stored.bytes.data(), data, bytes);
    }
    mStored.push_back(std::move(stored));
}

void FieldSet::addFloats(std::string const& name, std::vector<float> const& values)
{
    add(name, values.data(), values.size() * sizeof(float), PluginFieldType::kFLOAT32,
        static_cast<int32_t>(values.size()));
}

void FieldSet::addDoubles(std::string const& name, std::vector<double> const& values)
{
    add(name, values.data(), values.size() * sizeof(double), PluginFieldType::kFLOAT64,
        static_cast<int32_t>(values.size()));
}

void FieldSet::addInts(std::string const& name, std::vector<int32_t> const& values)
{
    add(name, values.data(), values.size() * sizeof(int32_t), PluginFieldType::kINT32,
        static_cast<int32_t>(values.size()));
}

void FieldSet::addInt64s(std::string const& name, std::vector<int64_t> const& values)
{
    add(name, values.data(), values.size() * sizeof(int64_t), PluginFieldType::kINT64,
        static_cast<int32_t>(values.size()));
}

void FieldSet::addChars(std::string const& name, std::string const& text)
{
    // The ONNX parser passes a STRING attribute as kCHAR with length = the string's size.
    add(name, text.data(), text.size(), PluginFieldType::kCHAR, static_cast<int32_t>(text.size()));
}

void FieldSet::addRaw(std::string const& name, void const* data, PluginFieldType type, int32_t length)
{
    mStored.push_back({name, {}, type, length, data, true});
}

nvinfer1::PluginFieldCollection const* FieldSet::collection()
{
    mFields.clear();
    for (Stored const& stored : mStored)
    {
        void const* const data = stored.raw ? stored.rawData : (stored.bytes.empty() ? nullptr : stored.bytes.data());
        mFields.emplace_back(stored.name.c_str(), data, stored.type, stored.length);
    }
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.empty() ? nullptr : mFields.data();
    return &mCollection;
}

std::optional<FieldSet> FieldSet::copyOf(nvinfer1::PluginFieldCollection const* fc, std::string& error)
{
    if (fc == nullptr)
    {
        error = "getFieldsToSerialize() returned nullptr";
        return std::nullopt;
    }
    if (fc->nbFields < 0 || (fc->nbFields > 0 && fc->fields == nullptr))
    {
        error = "the collection has " + std::to_string(fc->nbFields) + " fields and fields = nullptr";
        return std::nullopt;
    }
    FieldSet copy;
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        nvinfer1::PluginField const& field = fc->fields[i];
        std::string const name = field.name != nullptr ? field.name : "";
        size_t const element = fieldElementSize(field.type);
        if (field.name == nullptr || element == 0 || field.length < 0 || (field.length > 0 && field.data == nullptr))
        {
            error = "field " + std::to_string(i) + " ('" + name + "', " + fieldTypeName(field.type) + ", length "
                + std::to_string(field.length) + ") cannot be serialised";
            return std::nullopt;
        }
        copy.add(name, field.data, element * static_cast<size_t>(field.length), field.type, field.length);
    }
    return copy;
}

std::string FieldSet::describe(nvinfer1::PluginFieldCollection const* fc)
{
    if (fc == nullptr)
    {
        return "(null)";
    }
    std::ostringstream text;
    for (int32_t i = 0; i < fc->nbFields && fc->fields != nullptr; ++i)
    {
        nvinfer1::PluginField const& field = fc->fields[i];
        text << (field.name != nullptr ? field.name : "(null)") << ':' << fieldTypeName(field.type) << '['
             << field.length << "]=";
        for (int32_t j = 0; j < field.length && field.data != nullptr; ++j)
        {
            text << (j == 0 ? "" : ",");
            switch (field.type)
            {
            case PluginFieldType::kFLOAT32:
            {
                char buffer[32];
                std::snprintf(buffer, sizeof(buffer), "%a", static_cast<double>(static_cast<float const*>(field.data)[j]));
                text << buffer;
                break;
            }
            case PluginFieldType::kFLOAT64:
            {
                char buffer[32];
                std::snprintf(buffer, sizeof(buffer), "%a", static_cast<double const*>(field.data)[j]);
                text << buffer;
                break;
            }
            case PluginFieldType::kINT32: text << static_cast<int32_t const*>(field.data)[j]; break;
            case PluginFieldType::kINT64: text << static_cast<int64_t const*>(field.data)[j]; break;
            case PluginFieldType::kCHAR: text << static_cast<char const*>(field.data)[j]; break;
            default: text << "?"; break;
            }
        }
        text << '\n';
    }
    return text.str();
}

} // namespace harness
} // namespace fornet
