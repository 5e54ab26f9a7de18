/*
 * Pieces of TensorRT's plugin flow shared by the host and the device steps: capability lookup,
 * tensor descriptors for a case, and the path from an exported node to a plugin attached to an
 * execution context.
 */
#ifndef FORNET_HARNESS_PLUGIN_FLOW_H
#define FORNET_HARNESS_PLUGIN_FLOW_H

#include "conformance.h"

#include <NvInferRuntime.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fornet
{
namespace harness
{

struct Capabilities
{
    nvinfer1::IPluginV3OneCore* core{nullptr};
    nvinfer1::IPluginV3OneBuild* build{nullptr};
    nvinfer1::IPluginV3OneRuntime* runtime{nullptr};
};

//! The three capability interfaces, each taken only when its interface kind is the expected one
//! (what TensorRT checks before it casts).
Capabilities capabilitiesOf(nvinfer1::IPluginV3* plugin);

nvinfer1::Dims dims4(int64_t n, int64_t c, int64_t h, int64_t w);
std::string dimsText(nvinfer1::Dims const& dims);

//! Descriptors of the 2 inputs and R + 1 outputs for concrete sizes (linear formats).
std::vector<nvinfer1::PluginTensorDesc> tensorDescs(
    GateCase const& gate, int64_t batch, int64_t height, int64_t width);

//! Build-time descriptors: desc.dims with -1 for a dynamic batch, min/opt/max from the profile.
std::vector<nvinfer1::DynamicPluginTensorDesc> dynamicDescs(GateCase const& gate, int64_t height, int64_t width);

//! The fields TensorRT's ONNX parser hands createPlugin for `gate`'s node.
FieldSet parserFields(nvinfer1::IPluginCreatorV3One& creator, GateCase const& gate);

//! Join messages for a check's detail.
std::string joined(std::vector<std::string> const& messages, size_t limit = 4);

//! Node -> build plugin -> configurePlugin -> serialised fields -> runtime plugin: the plugin an
//! engine deserialises, or nullptr (each failing step is a check in `section`).
PluginPtr deserialisedPlugin(Session& session, GateCase const& gate, std::string const& section);

} // namespace harness
} // namespace fornet

#endif // FORNET_HARNESS_PLUGIN_FLOW_H
