/*
 * TensorRT IPluginV3 plugin for the fornet::TopKGate ONNX node (TensorRT 10.3 ... 11.x).
 *
 * Plugin "TopKGate", version "1", namespace "fornet". Inputs: features (B x C x h x w, float32 or
 * float16), scores (B x 1 x h x w, float32). Outputs: gated_0 .. gated_{R-1} (features' shape and
 * type) and masks (B x R x h x w, float32). Fields: "ratios" (float32[R], recorded), "ks" (int32[R],
 * kept cells per mask, non-decreasing). Semantics: fornet.export.topk_gate_reference.
 */
#ifndef FORNET_TOPK_GATE_PLUGIN_H
#define FORNET_TOPK_GATE_PLUGIN_H

#include <NvInferRuntime.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fornet
{
namespace plugin
{

constexpr char const* kTopKGateName = "TopKGate";
constexpr char const* kTopKGateVersion = "1";
constexpr char const* kTopKGateNamespace = "fornet";

class TopKGatePlugin final : public nvinfer1::IPluginV3,
                             public nvinfer1::IPluginV3OneCore,
                             public nvinfer1::IPluginV3OneBuild,
                             public nvinfer1::IPluginV3OneRuntime
{
public:
    //! `ratios` and `ks` must be validated (same length, 1..max ratios, ks non-decreasing and >= 1).
    TopKGatePlugin(std::vector<float> ratios, std::vector<int32_t> ks);
    TopKGatePlugin(TopKGatePlugin const& other);
    TopKGatePlugin& operator=(TopKGatePlugin const&) = delete;
    ~TopKGatePlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs,
        int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    int32_t numRatios() const noexcept;
    //! Empty when there are 2 inputs and R + 1 outputs, else what is wrong.
    std::string ioProblem(int32_t nbInputs, int32_t nbOutputs) const;
    //! Empty when features (B x C x h x w) and scores (B x 1 x h x w) agree and h * w holds the largest
    //! k; extents < 0 (not known yet) agree with anything. (The outputs' shapes are TensorRT's
    //! evaluation of getOutputShapes, so only the inputs, which come from the network, need checking.)
    std::string shapeProblem(nvinfer1::Dims const& features, nvinfer1::Dims const& scores) const;
    //! Logs `problem` unless it is empty; true when it is.
    bool accepted(std::string const& problem) const noexcept;

    std::vector<float> mRatios;
    std::vector<int32_t> mKs;
    std::vector<nvinfer1::PluginField> mSerialFields;
    nvinfer1::PluginFieldCollection mSerialCollection{};
};

class TopKGatePluginCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    TopKGatePluginCreator();
    ~TopKGatePluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFieldNames;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

} // namespace plugin
} // namespace fornet

#endif // FORNET_TOPK_GATE_PLUGIN_H
