/*
 * Host-side checks of libfornet_plugins.so through TensorRT's public plugin interfaces, with no GPU
 * and no TensorRT runtime: the library is reached only through its exported getCreators(), and
 * every call below is a virtual call on nvinfer1 interfaces (what TensorRT itself does). Linked
 * against a stand-in libnvinfer that only provides getPluginRegistry(); enqueue is exercised on
 * its argument validation, which returns before any CUDA call.
 *
 * Built and run by tests/test_plugin_build.py; prints one line per failed check, exits non-zero.
 */
#include <NvInferRuntime.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

namespace
{

using nvinfer1::DataType;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginFieldType;

int gFailures = 0;
int gChecks = 0;

void check(bool condition, char const* what)
{
    ++gChecks;
    if (!condition)
    {
        ++gFailures;
        std::printf("FAILED: %s\n", what);
    }
}

nvinfer1::Dims dims4(int64_t b, int64_t c, int64_t h, int64_t w)
{
    nvinfer1::Dims d{};
    d.nbDims = 4;
    d.d[0] = b;
    d.d[1] = c;
    d.d[2] = h;
    d.d[3] = w;
    return d;
}

nvinfer1::DynamicPluginTensorDesc dynamicDesc(DataType type, nvinfer1::Dims const& minDims)
{
    nvinfer1::DynamicPluginTensorDesc desc{};
    desc.desc.type = type;
    desc.desc.format = nvinfer1::TensorFormat::kLINEAR;
    desc.desc.dims = minDims;
    desc.min = minDims;
    desc.max = minDims;
    desc.opt = minDims;
    return desc;
}

struct Fields
{
    std::vector<float> ratios{0.1F, 0.2F, 0.3F, 0.4F};
    std::vector<int32_t> ks{13, 26, 38, 51};
    std::vector<PluginField> list;
    PluginFieldCollection collection{};

    PluginFieldCollection const* build(bool withParserStrings = true)
    {
        list.clear();
        list.emplace_back("ratios", ratios.data(), PluginFieldType::kFLOAT32, static_cast<int32_t>(ratios.size()));
        list.emplace_back("ks", ks.data(), PluginFieldType::kINT32, static_cast<int32_t>(ks.size()));
        if (withParserStrings)
        {
            list.emplace_back("plugin_version", "1", PluginFieldType::kCHAR, 1);
            list.emplace_back("plugin_namespace", "fornet", PluginFieldType::kCHAR, 6);
        }
        collection.nbFields = static_cast<int32_t>(list.size());
        collection.fields = list.data();
        return &collection;
    }
};

} // namespace

int main()
{
    int32_t count = 0;
    nvinfer1::IPluginCreatorInterface* const* creators = getCreators(count);
    check(count == 1 && creators != nullptr, "getCreators returns one creator");
    if (count != 1)
    {
        return 1;
    }
    check(std::strcmp(creators[0]->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0, "creator is V3One");
    auto* creator = static_cast<nvinfer1::IPluginCreatorV3One*>(creators[0]);
    check(std::string{creator->getPluginName()} == "TopKGate", "creator name");
    check(std::string{creator->getPluginVersion()} == "1", "creator version");
    check(std::string{creator->getPluginNamespace()} == "fornet", "creator namespace");

    PluginFieldCollection const* names = creator->getFieldNames();
    check(names->nbFields == 2, "two fields");
    check(std::string{names->fields[0].name} == "ratios" && names->fields[0].type == PluginFieldType::kFLOAT32,
        "field ratios is float32");
    check(std::string{names->fields[1].name} == "ks" && names->fields[1].type == PluginFieldType::kINT32,
        "field ks is int32");

    Fields fields;
    std::unique_ptr<nvinfer1::IPluginV3> plugin{
        creator->createPlugin("gate", fields.build(), nvinfer1::TensorRTPhase::kBUILD)};
    check(plugin != nullptr, "createPlugin with parser fields");
    if (!plugin)
    {
        return 1;
    }

    Fields decreasing;
    decreasing.ks = {13, 12, 38, 51};
    check(creator->createPlugin("bad", decreasing.build(), nvinfer1::TensorRTPhase::kBUILD) == nullptr,
        "decreasing ks rejected");
    Fields mismatched;
    mismatched.ratios = {0.1F};
    check(creator->createPlugin("bad", mismatched.build(), nvinfer1::TensorRTPhase::kBUILD) == nullptr,
        "ratios/ks length mismatch rejected");
    Fields tooMany;
    tooMany.ks.assign(9, 1);
    tooMany.ratios.assign(9, 0.1F);
    check(creator->createPlugin("bad", tooMany.build(), nvinfer1::TensorRTPhase::kBUILD) == nullptr,
        "more than 8 ratios rejected");
    PluginFieldCollection empty{};
    check(creator->createPlugin("bad", &empty, nvinfer1::TensorRTPhase::kBUILD) == nullptr, "missing fields rejected");
    std::vector<int64_t> ks64{13, 26, 38, 51};
    Fields wide;
    wide.build(false);
    wide.list[1] = PluginField("ks", ks64.data(), PluginFieldType::kINT64, 4);
    std::unique_ptr<nvinfer1::IPluginV3> fromInt64{
        creator->createPlugin("wide", &wide.collection, nvinfer1::TensorRTPhase::kBUILD)};
    check(fromInt64 != nullptr, "int64 ks accepted");

    auto* core = static_cast<nvinfer1::IPluginV3OneCore*>(
        plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kCORE));
    auto* build = static_cast<nvinfer1::IPluginV3OneBuild*>(
        plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<nvinfer1::IPluginV3OneRuntime*>(
        plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
    check(core != nullptr && build != nullptr && runtime != nullptr, "all three capabilities");
    check(std::string{core->getPluginName()} == "TopKGate" && std::string{core->getPluginNamespace()} == "fornet",
        "core name/namespace");
    check(build->getNbOutputs() == 5, "R + 1 outputs");

    DataType outTypes[5];
    DataType const half[2] = {DataType::kHALF, DataType::kFLOAT};
    check(build->getOutputDataTypes(outTypes, 5, half, 2) == 0, "fp16 features accepted");
    check(outTypes[0] == DataType::kHALF && outTypes[3] == DataType::kHALF && outTypes[4] == DataType::kFLOAT,
        "gated outputs follow features, masks float32");
    DataType const int8[2] = {DataType::kINT8, DataType::kFLOAT};
    check(build->getOutputDataTypes(outTypes, 5, int8, 2) != 0, "int8 features rejected");
    DataType const halfScores[2] = {DataType::kFLOAT, DataType::kHALF};
    check(build->getOutputDataTypes(outTypes, 5, halfScores, 2) != 0, "fp16 scores rejected");

    nvinfer1::DynamicPluginTensorDesc io[7];
    io[0] = dynamicDesc(DataType::kHALF, dims4(1, 8, 8, 16));
    io[1] = dynamicDesc(DataType::kFLOAT, dims4(1, 1, 8, 16));
    for (int i = 2; i < 6; ++i)
    {
        io[i] = dynamicDesc(DataType::kHALF, dims4(1, 8, 8, 16));
    }
    io[6] = dynamicDesc(DataType::kFLOAT, dims4(1, 4, 8, 16));
    bool all = true;
    for (int pos = 0; pos < 7; ++pos)
    {
        all = all && build->supportsFormatCombination(pos, io, 2, 5);
    }
    check(all, "fp16 linear combination supported");
    io[3].desc.type = DataType::kFLOAT;
    check(!build->supportsFormatCombination(3, io, 2, 5), "gated output type must equal features type");
    io[3].desc.type = DataType::kHALF;
    io[6].desc.type = DataType::kHALF;
    check(!build->supportsFormatCombination(6, io, 2, 5), "masks must be float32");
    io[6].desc.type = DataType::kFLOAT;
    io[1].desc.format = nvinfer1::TensorFormat::kCHW32;
    check(!build->supportsFormatCombination(1, io, 2, 5), "non-linear formats rejected");
    io[1].desc.format = nvinfer1::TensorFormat::kLINEAR;

    check(build->configurePlugin(io, 2, io + 2, 5) == 0, "configure with 8x16 = 128 cells >= k = 51");
    io[1].min = dims4(1, 1, 4, 8);
    check(build->configurePlugin(io, 2, io + 2, 5) != 0, "configure rejects a grid smaller than k");
    check(build->configurePlugin(io, 2, io + 2, 4) != 0, "configure rejects a wrong output count");

    nvinfer1::PluginTensorDesc in[2] = {io[0].desc, io[1].desc};
    nvinfer1::PluginTensorDesc out[5] = {io[2].desc, io[3].desc, io[4].desc, io[5].desc, io[6].desc};
    check(runtime->onShapeChange(in, 2, out, 5) == 0, "onShapeChange accepts 8x16");
    in[1].dims = dims4(1, 1, 2, 8);
    check(runtime->onShapeChange(in, 2, out, 5) != 0, "onShapeChange rejects 16 cells < k");
    in[0].dims = dims4(1, 8, 2, 8);
    int dummy = 0;
    void const* inputs[2] = {&dummy, &dummy};
    void* outputs[5] = {&dummy, &dummy, &dummy, &dummy, &dummy};
    check(runtime->enqueue(in, out, inputs, outputs, nullptr, nullptr) != 0, "enqueue refuses k > cells");

    PluginFieldCollection const* serial = runtime->getFieldsToSerialize();
    check(serial != nullptr && serial->nbFields == 2, "two serialised fields");
    std::unique_ptr<nvinfer1::IPluginV3> restored{
        creator->createPlugin("gate", serial, nvinfer1::TensorRTPhase::kRUNTIME)};
    check(restored != nullptr, "runtime createPlugin from serialised fields");
    if (restored)
    {
        auto* restoredRuntime = static_cast<nvinfer1::IPluginV3OneRuntime*>(
            restored->getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
        PluginFieldCollection const* again = restoredRuntime->getFieldsToSerialize();
        check(again->fields[1].length == 4 && static_cast<int32_t const*>(again->fields[1].data)[3] == 51,
            "ks survive serialisation");
        check(static_cast<float const*>(again->fields[0].data)[2] == 0.3F, "ratios survive serialisation");
    }

    std::unique_ptr<nvinfer1::IPluginV3> cloned{plugin->clone()};
    plugin.reset();
    check(cloned != nullptr, "clone");
    if (cloned)
    {
        auto* clonedBuild = static_cast<nvinfer1::IPluginV3OneBuild*>(
            cloned->getCapabilityInterface(nvinfer1::PluginCapabilityType::kBUILD));
        check(clonedBuild->getNbOutputs() == 5, "clone outlives the original");
        auto* clonedRuntime = static_cast<nvinfer1::IPluginV3OneRuntime*>(
            cloned->getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
        std::unique_ptr<nvinfer1::IPluginV3> attached{clonedRuntime->attachToContext(nullptr)};
        check(attached != nullptr && attached.get() != cloned.get(), "attachToContext returns a new object");
    }

    std::printf("%d checks, %d failed\n", gChecks, gFailures);
    return gFailures == 0 ? 0 : 1;
}
