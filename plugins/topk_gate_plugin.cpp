/*
 * TensorRT IPluginV3 plugin for fornet::TopKGate (see topk_gate_plugin.h); the CUDA work lives in
 * topk_gate_kernel.cu.
 *
 * Registration:
 *  - static (FORNET_STATIC_REGISTRATION=1, the default): loading the library registers the creator,
 *    which serves ctypes.CDLL, fornet.runtime.plugins, DeepStream's custom-lib-path and
 *    `trtexec --staticPlugins`;
 *  - dynamic: the exported getCreators / setLoggerFinder entry points serve
 *    IPluginRegistry::loadLibrary (`trtexec --dynamicPlugins`, `--setPluginsToSerialize`). loadLibrary
 *    refuses a library whose creators are already registered, so build with
 *    -DFORNET_STATIC_REGISTRATION=OFF for that use.
 */
#include "topk_gate_plugin.h"

#include "topk_gate_kernel.cuh"

#include <cstdio>
#include <exception>
#include <string>
#include <utility>

#ifndef FORNET_STATIC_REGISTRATION
#define FORNET_STATIC_REGISTRATION 1
#endif

#define FORNET_PLUGIN_EXPORT __attribute__((visibility("default")))

namespace fornet
{
namespace plugin
{
namespace
{

using nvinfer1::DataType;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldType;
using nvinfer1::TensorFormat;

constexpr int32_t kNbInputs = 2;
constexpr int32_t kFeatures = 0;
constexpr int32_t kScores = 1;
constexpr int32_t kRank = 4; // B x C x h x w
constexpr int32_t kHeightAxis = 2;
constexpr int32_t kWidthAxis = 3;

nvinfer1::ILoggerFinder* gLoggerFinder{nullptr};

//! Report through the logger of the calling engine when TensorRT gave us a finder, else stderr.
void logError(std::string const& message) noexcept
{
    std::string const text = std::string{"fornet::TopKGate plugin: "} + message;
    nvinfer1::ILogger* logger = gLoggerFinder != nullptr ? gLoggerFinder->findLogger() : nullptr;
    if (logger != nullptr)
    {
        logger->log(nvinfer1::ILogger::Severity::kERROR, text.c_str());
    }
    else
    {
        std::fprintf(stderr, "%s\n", text.c_str());
    }
}

char const* fieldTypeName(PluginFieldType type)
{
    switch (type)
    {
    case PluginFieldType::kFLOAT16: return "kFLOAT16";
    case PluginFieldType::kFLOAT32: return "kFLOAT32";
    case PluginFieldType::kFLOAT64: return "kFLOAT64";
    case PluginFieldType::kINT8: return "kINT8";
    case PluginFieldType::kINT16: return "kINT16";
    case PluginFieldType::kINT32: return "kINT32";
    case PluginFieldType::kCHAR: return "kCHAR (a string)";
    case PluginFieldType::kINT64: return "kINT64";
    default: return "another type";
    }
}

//! Empty string when `field` holds `field.length` values it can point at, else what is wrong.
std::string fieldStorageProblem(PluginField const& field, char const* name)
{
    if (field.length < 0 || (field.length > 0 && field.data == nullptr))
    {
        return std::string{"field '"} + name + "' has length " + std::to_string(field.length)
            + (field.data == nullptr ? " and no data" : "") + "; re-export the ONNX model with fornet-export";
    }
    return {};
}

//! Read `ratios` (float32 or float64); empty string on success, else what is wrong.
std::string readFloats(PluginField const& field, std::vector<float>& values)
{
    std::string problem = fieldStorageProblem(field, "ratios");
    if (!problem.empty())
    {
        return problem;
    }
    if (field.type != PluginFieldType::kFLOAT32 && field.type != PluginFieldType::kFLOAT64)
    {
        return std::string{"field 'ratios' must hold floats (an ONNX FLOATS attribute, kFLOAT32), got "}
            + fieldTypeName(field.type) + "; re-export the ONNX model with fornet-export";
    }
    values.clear();
    for (int32_t i = 0; i < field.length; ++i)
    {
        values.push_back(field.type == PluginFieldType::kFLOAT32
                ? static_cast<float const*>(field.data)[i]
                : static_cast<float>(static_cast<double const*>(field.data)[i]));
    }
    return {};
}

//! Read `ks` (int32 or int64 within int32); empty string on success, else what is wrong.
std::string readInts(PluginField const& field, std::vector<int32_t>& values)
{
    std::string problem = fieldStorageProblem(field, "ks");
    if (!problem.empty())
    {
        return problem;
    }
    if (field.type != PluginFieldType::kINT32 && field.type != PluginFieldType::kINT64)
    {
        return std::string{"field 'ks' must hold integers (an ONNX INTS attribute, kINT32), got "}
            + fieldTypeName(field.type) + "; re-export the ONNX model with fornet-export";
    }
    values.clear();
    for (int32_t i = 0; i < field.length; ++i)
    {
        int64_t const value = field.type == PluginFieldType::kINT32 ? static_cast<int32_t const*>(field.data)[i]
                                                                   : static_cast<int64_t const*>(field.data)[i];
        if (value < INT32_MIN || value > INT32_MAX)
        {
            return "field 'ks' holds " + std::to_string(value) + ", beyond int32; re-export the ONNX model";
        }
        values.push_back(static_cast<int32_t>(value));
    }
    return {};
}

//! Empty string when (ratios, ks) satisfy the contract, else what is wrong.
std::string validateFields(std::vector<float> const& ratios, std::vector<int32_t> const& ks)
{
    if (ks.empty() || ks.size() > FORNET_TOPK_GATE_MAX_RATIOS)
    {
        return "field 'ks' needs 1 to " + std::to_string(FORNET_TOPK_GATE_MAX_RATIOS) + " values, got "
            + std::to_string(ks.size()) + "; re-export the ONNX model with fornet-export";
    }
    if (ratios.size() != ks.size())
    {
        return "fields 'ratios' (" + std::to_string(ratios.size()) + " values) and 'ks' ("
            + std::to_string(ks.size()) + " values) must have the same length; re-export the ONNX model";
    }
    for (size_t i = 0; i < ks.size(); ++i)
    {
        int32_t const lower = i == 0 ? 1 : ks[i - 1];
        if (ks[i] < lower)
        {
            return "field 'ks' must be non-decreasing values >= 1, got ks[" + std::to_string(i)
                + "] = " + std::to_string(ks[i]) + "; re-export the ONNX model";
        }
        if (!(ratios[i] > 0.0F && ratios[i] <= 1.0F)) // also refuses NaN
        {
            return "field 'ratios' must hold values in (0, 1], got ratios[" + std::to_string(i)
                + "] = " + std::to_string(ratios[i]) + "; re-export the ONNX model";
        }
    }
    return {};
}

std::string dimsText(nvinfer1::Dims const& dims)
{
    std::string text = "(";
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        text += (i == 0 ? "" : ", ") + (dims.d[i] < 0 ? std::string{"?"} : std::to_string(dims.d[i]));
    }
    return text + ")";
}

//! Whether two extents can be equal (-1: not known yet).
bool agree(int64_t a, int64_t b) noexcept
{
    return a < 0 || b < 0 || a == b;
}

} // namespace

TopKGatePlugin::TopKGatePlugin(std::vector<float> ratios, std::vector<int32_t> ks)
    : mRatios(std::move(ratios))
    , mKs(std::move(ks))
{
}

TopKGatePlugin::TopKGatePlugin(TopKGatePlugin const& other)
    : nvinfer1::IPluginV3(other)
    , nvinfer1::IPluginV3OneCore(other)
    , nvinfer1::IPluginV3OneBuild(other)
    , nvinfer1::IPluginV3OneRuntime(other)
    , mRatios(other.mRatios)
    , mKs(other.mKs)
{
}

nvinfer1::IPluginCapability* TopKGatePlugin::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

nvinfer1::IPluginV3* TopKGatePlugin::clone() noexcept
{
    try
    {
        return new TopKGatePlugin(*this);
    }
    catch (std::exception const& error)
    {
        logError(std::string{"clone failed: "} + error.what());
    }
    return nullptr;
}

char const* TopKGatePlugin::getPluginName() const noexcept
{
    return kTopKGateName;
}

char const* TopKGatePlugin::getPluginVersion() const noexcept
{
    return kTopKGateVersion;
}

char const* TopKGatePlugin::getPluginNamespace() const noexcept
{
    return kTopKGateNamespace;
}

int32_t TopKGatePlugin::numRatios() const noexcept
{
    return static_cast<int32_t>(mKs.size());
}

std::string TopKGatePlugin::ioProblem(int32_t nbInputs, int32_t nbOutputs) const
{
    if (nbInputs != kNbInputs || nbOutputs != numRatios() + 1)
    {
        return "expected 2 inputs (features, scores) and " + std::to_string(numRatios() + 1)
            + " outputs (gated_0.., masks), got " + std::to_string(nbInputs) + " and " + std::to_string(nbOutputs)
            + "; re-export the ONNX model with fornet-export";
    }
    return {};
}

std::string TopKGatePlugin::shapeProblem(nvinfer1::Dims const& features, nvinfer1::Dims const& scores) const
{
    if (features.nbDims != kRank || scores.nbDims != kRank)
    {
        return "features and scores must be 4-D (B x C x h x w and B x 1 x h x w), got features "
            + dimsText(features) + " and scores " + dimsText(scores) + "; re-export the ONNX model";
    }
    if (!agree(scores.d[1], 1) || !agree(features.d[0], scores.d[0])
        || !agree(features.d[kHeightAxis], scores.d[kHeightAxis]) || !agree(features.d[kWidthAxis], scores.d[kWidthAxis]))
    {
        return "scores must be B x 1 x h x w on the features' grid (features B x C x h x w), got features "
            + dimsText(features) + " and scores " + dimsText(scores)
            + "; both come from the selector grid of one export: re-export the ONNX model";
    }
    int64_t const height = scores.d[kHeightAxis];
    int64_t const width = scores.d[kWidthAxis];
    if (height >= 0 && width >= 0 && height * width < mKs.back())
    {
        return "the selector grid has " + std::to_string(height * width) + " cells but the largest k is "
            + std::to_string(mKs.back()) + "; export the model for this input size (k depends on it)";
    }
    return {};
}

bool TopKGatePlugin::accepted(std::string const& problem) const noexcept
{
    if (!problem.empty())
    {
        logError(problem);
    }
    return problem.empty();
}

int32_t TopKGatePlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    try
    {
        // The inputs come from the network; the outputs' shapes are TensorRT's evaluation of ours.
        return accepted(ioProblem(nbInputs, nbOutputs))
                && accepted(shapeProblem(in[kFeatures].desc.dims, in[kScores].desc.dims))
                && accepted(shapeProblem(in[kFeatures].min, in[kScores].min))
                && accepted(shapeProblem(in[kFeatures].opt, in[kScores].opt))
                && accepted(shapeProblem(in[kFeatures].max, in[kScores].max))
            ? 0
            : -1;
    }
    catch (std::exception const& error)
    {
        logError(std::string{"configurePlugin failed: "} + error.what());
    }
    return -1;
}

int32_t TopKGatePlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (nbInputs != kNbInputs || nbOutputs != numRatios() + 1)
    {
        return -1;
    }
    if (inputTypes[kFeatures] != DataType::kFLOAT && inputTypes[kFeatures] != DataType::kHALF)
    {
        logError("features must be float32 or float16; keep the gate's inputs in one of these types in the ONNX");
        return -1;
    }
    if (inputTypes[kScores] != DataType::kFLOAT)
    {
        logError("scores must be float32 (the selector stays in full precision); fix the ONNX export");
        return -1;
    }
    for (int32_t i = 0; i < numRatios(); ++i)
    {
        outputTypes[i] = inputTypes[kFeatures];
    }
    outputTypes[numRatios()] = DataType::kFLOAT;
    return 0;
}

int32_t TopKGatePlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept
{
    try
    {
        if (!accepted(ioProblem(nbInputs, nbOutputs)))
        {
            return -1;
        }
        // What is known at network time: the constant extents (-1 for the others).
        auto constants = [](nvinfer1::DimsExprs const& exprs) {
            nvinfer1::Dims dims{};
            dims.nbDims = exprs.nbDims < 0 || exprs.nbDims > nvinfer1::Dims::MAX_DIMS ? -1 : exprs.nbDims;
            for (int32_t i = 0; i < dims.nbDims; ++i)
            {
                dims.d[i] = exprs.d[i] != nullptr && exprs.d[i]->isConstant() ? exprs.d[i]->getConstantValue() : -1;
            }
            return dims;
        };
        if (!accepted(shapeProblem(constants(inputs[kFeatures]), constants(inputs[kScores]))))
        {
            return -1;
        }
        for (int32_t i = 0; i < numRatios(); ++i)
        {
            outputs[i] = inputs[kFeatures];
        }
        nvinfer1::DimsExprs& masks = outputs[numRatios()];
        masks.nbDims = kRank;
        masks.d[0] = inputs[kFeatures].d[0];
        masks.d[1] = exprBuilder.constant(numRatios());
        masks.d[kHeightAxis] = inputs[kFeatures].d[kHeightAxis];
        masks.d[kWidthAxis] = inputs[kFeatures].d[kWidthAxis];
        return 0;
    }
    catch (std::exception const& error)
    {
        logError(std::string{"getOutputShapes failed: "} + error.what());
    }
    return -1;
}

bool TopKGatePlugin::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (nbInputs != kNbInputs || nbOutputs != numRatios() + 1 || pos < 0 || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR)
    {
        return false;
    }
    if (pos == kFeatures)
    {
        return desc.type == DataType::kFLOAT || desc.type == DataType::kHALF;
    }
    if (pos == kScores || pos == nbInputs + numRatios())
    {
        return desc.type == DataType::kFLOAT; // scores and masks
    }
    return desc.type == inOut[kFeatures].desc.type; // gated outputs
}

int32_t TopKGatePlugin::getNbOutputs() const noexcept
{
    return numRatios() + 1;
}

int32_t TopKGatePlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    try
    {
        return accepted(ioProblem(nbInputs, nbOutputs)) && accepted(shapeProblem(in[kFeatures].dims, in[kScores].dims))
            ? 0
            : -1;
    }
    catch (std::exception const& error)
    {
        logError(std::string{"onShapeChange failed: "} + error.what());
    }
    return -1;
}

int32_t TopKGatePlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* /*outputDesc*/, void const* const* inputs, void* const* outputs,
    void* /*workspace*/, cudaStream_t stream) noexcept
{
    nvinfer1::Dims const& dims = inputDesc[kFeatures].dims;
    if (dims.d[0] == 0)
    {
        return 0; // an empty batch: nothing to read or write, whatever the addresses
    }
    int32_t const featureType
        = inputDesc[kFeatures].type == DataType::kHALF ? FORNET_TOPK_GATE_FLOAT16 : FORNET_TOPK_GATE_FLOAT32;
    cudaError_t const status = fornet_topk_gate_launch(inputs[kFeatures], static_cast<float const*>(inputs[kScores]),
        outputs, static_cast<float*>(outputs[numRatios()]), static_cast<int32_t>(dims.d[0]),
        static_cast<int32_t>(dims.d[1]), static_cast<int32_t>(dims.d[kHeightAxis]),
        static_cast<int32_t>(dims.d[kWidthAxis]), mKs.data(), numRatios(), featureType, stream);
    if (status != cudaSuccess)
    {
        logError(std::string{"kernel launch failed: "} + cudaGetErrorString(status));
        return -1;
    }
    return 0;
}

nvinfer1::IPluginV3* TopKGatePlugin::attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept
{
    return clone();
}

nvinfer1::PluginFieldCollection const* TopKGatePlugin::getFieldsToSerialize() noexcept
{
    try
    {
        mSerialFields.clear();
        mSerialFields.emplace_back("ratios", mRatios.data(), PluginFieldType::kFLOAT32, numRatios());
        mSerialFields.emplace_back("ks", mKs.data(), PluginFieldType::kINT32, numRatios());
        mSerialCollection.nbFields = static_cast<int32_t>(mSerialFields.size());
        mSerialCollection.fields = mSerialFields.data();
        return &mSerialCollection;
    }
    catch (std::exception const& error)
    {
        logError(std::string{"serialisation failed: "} + error.what());
    }
    return nullptr;
}

TopKGatePluginCreator::TopKGatePluginCreator()
{
    mFieldNames.emplace_back("ratios", nullptr, PluginFieldType::kFLOAT32, 0);
    mFieldNames.emplace_back("ks", nullptr, PluginFieldType::kINT32, 0);
    mFieldCollection.nbFields = static_cast<int32_t>(mFieldNames.size());
    mFieldCollection.fields = mFieldNames.data();
}

char const* TopKGatePluginCreator::getPluginName() const noexcept
{
    return kTopKGateName;
}

char const* TopKGatePluginCreator::getPluginVersion() const noexcept
{
    return kTopKGateVersion;
}

char const* TopKGatePluginCreator::getPluginNamespace() const noexcept
{
    return kTopKGateNamespace;
}

nvinfer1::PluginFieldCollection const* TopKGatePluginCreator::getFieldNames() noexcept
{
    return &mFieldCollection;
}

nvinfer1::IPluginV3* TopKGatePluginCreator::createPlugin(
    char const* /*name*/, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase /*phase*/) noexcept
{
    try
    {
        std::vector<float> ratios;
        std::vector<int32_t> ks;
        bool haveRatios = false;
        bool haveKs = false;
        for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
        {
            PluginField const& field = fc->fields[i];
            std::string const name = field.name != nullptr ? field.name : "";
            std::string problem;
            if (name == "ratios")
            {
                problem = readFloats(field, ratios);
                haveRatios = true;
            }
            else if (name == "ks")
            {
                problem = readInts(field, ks);
                haveKs = true;
            }
            if (!problem.empty())
            {
                logError(problem);
                return nullptr;
            }
        }
        if (!haveRatios || !haveKs)
        {
            logError(std::string{"the node has no attribute "} + (haveKs ? "'ratios' (floats)" : "'ks' (ints)")
                + (haveRatios || haveKs ? "" : " nor 'ratios' (floats)")
                + "; re-export the ONNX model with fornet-export");
            return nullptr;
        }
        std::string const problem = validateFields(ratios, ks);
        if (!problem.empty())
        {
            logError(problem);
            return nullptr;
        }
        return new TopKGatePlugin(std::move(ratios), std::move(ks));
    }
    catch (std::exception const& error)
    {
        logError(std::string{"createPlugin failed: "} + error.what());
    }
    return nullptr;
}

namespace
{

TopKGatePluginCreator& creatorInstance()
{
    static TopKGatePluginCreator creator;
    return creator;
}

#if FORNET_STATIC_REGISTRATION
//! Static registration on library load. Unlike REGISTER_TENSORRT_PLUGIN (which passes the namespace
//! ""), this registers under the creator's own namespace, the pairing TensorRT's Python plugin API uses,
//! so lookups of TopKGate/1/fornet succeed whichever of the two the registry keys on.
struct StaticRegistration
{
    StaticRegistration()
    {
        nvinfer1::IPluginRegistry* registry = getPluginRegistry();
        if (registry == nullptr)
        {
            logError("TensorRT returned no plugin registry; creator TopKGate/1/fornet is not registered");
        }
        else if (!registry->registerCreator(creatorInstance(), kTopKGateNamespace))
        {
            logError("could not register creator TopKGate/1/fornet: another library already registered it");
        }
    }
};

StaticRegistration const gStaticRegistration{};
#endif

} // namespace

} // namespace plugin
} // namespace fornet

extern "C" FORNET_PLUGIN_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    fornet::plugin::gLoggerFinder = finder;
}

extern "C" FORNET_PLUGIN_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&fornet::plugin::creatorInstance()};
    nbCreators = 1;
    return creators;
}
