/*
 * Pieces of TensorRT's plugin flow shared by the host and the device steps (see plugin_flow.h).
 */
#include "plugin_flow.h"

#include <cstring>
#include <optional>

namespace fornet
{
namespace harness
{

using nvinfer1::DataType;
using nvinfer1::PluginCapabilityType;
using nvinfer1::TensorFormat;

namespace
{

template <typename T>
T* capability(nvinfer1::IPluginV3* plugin, PluginCapabilityType type, char const* kind)
{
    nvinfer1::IPluginCapability* const found = plugin->getCapabilityInterface(type);
    if (found == nullptr || std::strcmp(found->getInterfaceInfo().kind, kind) != 0)
    {
        return nullptr;
    }
    return static_cast<T*>(found);
}

} // namespace

Capabilities capabilitiesOf(nvinfer1::IPluginV3* plugin)
{
    Capabilities caps;
    if (plugin != nullptr)
    {
        caps.core = capability<nvinfer1::IPluginV3OneCore>(plugin, PluginCapabilityType::kCORE, "PLUGIN_V3ONE_CORE");
        caps.build
            = capability<nvinfer1::IPluginV3OneBuild>(plugin, PluginCapabilityType::kBUILD, "PLUGIN_V3ONE_BUILD");
        caps.runtime = capability<nvinfer1::IPluginV3OneRuntime>(
            plugin, PluginCapabilityType::kRUNTIME, "PLUGIN_V3ONE_RUNTIME");
    }
    return caps;
}

nvinfer1::Dims dims4(int64_t n, int64_t c, int64_t h, int64_t w)
{
    nvinfer1::Dims dims{};
    dims.nbDims = 4;
    dims.d[0] = n;
    dims.d[1] = c;
    dims.d[2] = h;
    dims.d[3] = w;
    return dims;
}

std::string dimsText(nvinfer1::Dims const& dims)
{
    std::string text = "(";
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        text += (i == 0 ? "" : ", ") + std::to_string(dims.d[i]);
    }
    return text + ")";
}

std::vector<nvinfer1::PluginTensorDesc> tensorDescs(
    GateCase const& gate, int64_t batch, int64_t height, int64_t width)
{
    auto const ratios = static_cast<int64_t>(gate.ks().size());
    auto desc = [](DataType type, nvinfer1::Dims const& dims) {
        nvinfer1::PluginTensorDesc d{};
        d.dims = dims;
        d.type = type;
        d.format = TensorFormat::kLINEAR;
        d.scale = 1.0F;
        return d;
    };
    std::vector<nvinfer1::PluginTensorDesc> descs;
    descs.push_back(desc(gate.featuresType, dims4(batch, gate.channels, height, width)));
    descs.push_back(desc(DataType::kFLOAT, dims4(batch, 1, height, width)));
    for (int64_t i = 0; i < ratios; ++i)
    {
        descs.push_back(desc(gate.featuresType, dims4(batch, gate.channels, height, width)));
    }
    descs.push_back(desc(DataType::kFLOAT, dims4(batch, ratios, height, width)));
    return descs;
}

std::vector<nvinfer1::DynamicPluginTensorDesc> dynamicDescs(GateCase const& gate, int64_t height, int64_t width)
{
    std::vector<nvinfer1::PluginTensorDesc> const opt = tensorDescs(gate, gate.profileOpt, height, width);
    std::vector<nvinfer1::DynamicPluginTensorDesc> descs(opt.size());
    for (size_t i = 0; i < opt.size(); ++i)
    {
        descs[i].desc = opt[i];
        descs[i].desc.dims.d[0] = gate.batch < 0 ? -1 : gate.batch;
        descs[i].opt = opt[i].dims;
        descs[i].min = opt[i].dims;
        descs[i].min.d[0] = gate.profileMin;
        descs[i].max = opt[i].dims;
        descs[i].max.d[0] = gate.profileMax;
    }
    return descs;
}

FieldSet parserFields(nvinfer1::IPluginCreatorV3One& creator, GateCase const& gate)
{
    std::vector<std::string> missing;
    return fieldsFromNode(creator.getFieldNames(), gate.attributes, missing);
}

std::string joined(std::vector<std::string> const& messages, size_t limit)
{
    std::string text;
    for (size_t i = 0; i < messages.size() && i < limit; ++i)
    {
        text += (i == 0 ? "" : " | ") + messages[i];
    }
    if (messages.size() > limit)
    {
        text += " | ... (" + std::to_string(messages.size()) + " in all)";
    }
    return text;
}

PluginPtr deserialisedPlugin(Session& session, GateCase const& gate, std::string const& section)
{
    Report& report = session.report;
    FieldSet fields = parserFields(session.creator, gate);
    size_t const mark = session.logger.mark();
    PluginPtr built{session.creator.createPlugin(gate.name.c_str(), fields.collection(), nvinfer1::TensorRTPhase::kBUILD)};
    if (!report.check(section, built != nullptr, "createPlugin(kBUILD) from the node's fields",
            joined(session.logger.errorsSince(mark))))
    {
        return nullptr;
    }
    Capabilities const caps = capabilitiesOf(built.get());
    if (!report.check(section, caps.build != nullptr && caps.runtime != nullptr,
            "the build plugin has its build and runtime capabilities"))
    {
        return nullptr;
    }
    std::vector<nvinfer1::DynamicPluginTensorDesc> descs = dynamicDescs(gate, gate.height, gate.width);
    auto const nbOutputs = static_cast<int32_t>(descs.size()) - 2;
    if (!report.check(section, caps.build->configurePlugin(descs.data(), 2, descs.data() + 2, nbOutputs) == 0,
            "configurePlugin accepts the profile", joined(session.logger.errorsSince(mark))))
    {
        return nullptr;
    }
    std::string error;
    std::optional<FieldSet> plan = FieldSet::copyOf(caps.runtime->getFieldsToSerialize(), error);
    if (!report.check(section, plan.has_value(), "getFieldsToSerialize gives fields a plan can hold", error))
    {
        return nullptr;
    }
    built.reset();
    PluginPtr restored{
        session.creator.createPlugin(gate.name.c_str(), plan->collection(), nvinfer1::TensorRTPhase::kRUNTIME)};
    report.check(section, restored != nullptr, "createPlugin(kRUNTIME) from the serialised fields",
        joined(session.logger.errorsSince(mark)));
    return restored;
}

} // namespace harness
} // namespace fornet
