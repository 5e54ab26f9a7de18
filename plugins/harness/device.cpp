/*
 * The device steps (GPU only; compiled everywhere): a deserialised plugin attached to two execution
 * contexts enqueues on its own CUDA stream each, on device buffers, and every output must equal the
 * NumPy reference (fornet.export.topk_gate_reference) bit for bit. The reference outputs come from
 * plugins/harness/plugin_check.py in the case's data folder.
 */
#include "conformance.h"

#include "plugin_flow.h"

#include <cuda_runtime_api.h>

#include <cstring>
#include <fstream>
#include <iterator>

namespace fornet
{
namespace harness
{

namespace
{

constexpr int32_t kNbInputs = 2;

std::vector<uint8_t> readFile(std::string const& path)
{
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

//! Device memory freed on scope exit.
class DeviceBuffer
{
public:
    explicit DeviceBuffer(size_t bytes)
        : mBytes(bytes)
    {
        if (cudaMalloc(&mData, bytes) != cudaSuccess)
        {
            mData = nullptr;
        }
    }
    ~DeviceBuffer()
    {
        if (mData != nullptr)
        {
            cudaFree(mData);
        }
    }
    DeviceBuffer(DeviceBuffer const&) = delete;
    DeviceBuffer& operator=(DeviceBuffer const&) = delete;
    void* data() const noexcept
    {
        return mData;
    }
    size_t bytes() const noexcept
    {
        return mBytes;
    }

private:
    void* mData{nullptr};
    size_t mBytes;
};

//! A CUDA stream destroyed on scope exit.
class Stream
{
public:
    Stream()
    {
        if (cudaStreamCreateWithFlags(&mStream, cudaStreamNonBlocking) != cudaSuccess)
        {
            mStream = nullptr;
        }
    }
    ~Stream()
    {
        if (mStream != nullptr)
        {
            cudaStreamDestroy(mStream);
        }
    }
    Stream(Stream const&) = delete;
    Stream& operator=(Stream const&) = delete;
    cudaStream_t get() const noexcept
    {
        return mStream;
    }

private:
    cudaStream_t mStream{nullptr};
};

std::string cudaText(cudaError_t status)
{
    return std::string{cudaGetErrorName(status)} + ": " + cudaGetErrorString(status);
}

//! One execution context's outputs: R gated tensors and the masks.
struct Outputs
{
    std::vector<std::unique_ptr<DeviceBuffer>> buffers;
    std::vector<void*> pointers;
};

Outputs allocateOutputs(std::vector<std::vector<uint8_t>> const& expected)
{
    Outputs outputs;
    for (std::vector<uint8_t> const& reference : expected)
    {
        outputs.buffers.push_back(std::make_unique<DeviceBuffer>(reference.size()));
        outputs.pointers.push_back(outputs.buffers.back()->data());
    }
    return outputs;
}

//! Outputs that differ from the reference (by output name and count of differing bytes).
std::vector<std::string> compare(Outputs const& outputs, std::vector<std::vector<uint8_t>> const& expected,
    std::vector<std::string> const& names, cudaError_t& status)
{
    std::vector<std::string> wrong;
    for (size_t i = 0; i < expected.size(); ++i)
    {
        std::vector<uint8_t> got(expected[i].size());
        status = cudaMemcpy(got.data(), outputs.pointers[i], got.size(), cudaMemcpyDeviceToHost);
        if (status != cudaSuccess)
        {
            return {"copy of " + names[i] + ": " + cudaText(status)};
        }
        size_t differing = 0;
        for (size_t b = 0; b < got.size(); ++b)
        {
            differing += got[b] != expected[i][b] ? 1 : 0;
        }
        if (differing > 0)
        {
            wrong.push_back(names[i] + ": " + std::to_string(differing) + " of " + std::to_string(got.size())
                + " bytes differ");
        }
    }
    return wrong;
}

} // namespace

bool cudaDeviceAvailable(std::string& why)
{
    int count = 0;
    cudaError_t const status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess || count == 0)
    {
        why = status != cudaSuccess ? cudaText(status) : "no CUDA device";
        return false;
    }
    return true;
}

void checkDeviceCase(Session& session, GateCase const& gate)
{
    Report& report = session.report;
    std::string const section = "device/" + gate.name;
    auto const ratios = static_cast<int32_t>(gate.ks().size());
    int32_t const nbOutputs = ratios + 1;
    size_t const featureBytes = gate.featuresType == nvinfer1::DataType::kHALF ? 2 : 4;
    auto const batch = static_cast<size_t>(gate.batch);
    auto const cells = static_cast<size_t>(gate.height * gate.width);
    size_t const featuresSize = batch * static_cast<size_t>(gate.channels) * cells * featureBytes;

    std::vector<uint8_t> const features = readFile(gate.dataDir + "/features.bin");
    std::vector<uint8_t> const scores = readFile(gate.dataDir + "/scores.bin");
    std::vector<std::vector<uint8_t>> expected;
    std::vector<std::string> names;
    for (int32_t i = 0; i < ratios; ++i)
    {
        names.push_back("gated_" + std::to_string(i));
        expected.push_back(readFile(gate.dataDir + "/" + names.back() + ".bin"));
    }
    names.emplace_back("masks");
    expected.push_back(readFile(gate.dataDir + "/masks.bin"));
    bool sized = features.size() == featuresSize && scores.size() == batch * cells * 4
        && expected.back().size() == batch * static_cast<size_t>(ratios) * cells * 4;
    for (int32_t i = 0; i < ratios; ++i)
    {
        sized = sized && expected[static_cast<size_t>(i)].size() == featuresSize;
    }
    if (!report.check(section, sized, "the reference data in " + gate.dataDir + " has the case's sizes"))
    {
        return;
    }

    PluginPtr engine = deserialisedPlugin(session, gate, section);
    if (engine == nullptr)
    {
        return;
    }
    ResourceContext firstContext;
    ResourceContext secondContext;
    Capabilities const engineCaps = capabilitiesOf(engine.get());
    PluginPtr first{engineCaps.runtime->attachToContext(&firstContext)};
    PluginPtr second{engineCaps.runtime->attachToContext(&secondContext)};
    Capabilities const a = capabilitiesOf(first.get());
    Capabilities const b = capabilitiesOf(second.get());
    if (!report.check(section, a.runtime != nullptr && b.runtime != nullptr, "two execution contexts attached"))
    {
        return;
    }
    std::vector<nvinfer1::PluginTensorDesc> const io = tensorDescs(gate, gate.batch, gate.height, gate.width);
    size_t const mark = session.logger.mark();
    report.check(section,
        a.runtime->onShapeChange(io.data(), kNbInputs, io.data() + kNbInputs, nbOutputs) == 0
            && b.runtime->onShapeChange(io.data(), kNbInputs, io.data() + kNbInputs, nbOutputs) == 0,
        "onShapeChange for the case's sizes in both contexts", joined(session.logger.errorsSince(mark)));

    DeviceBuffer featuresBuffer(features.size());
    DeviceBuffer scoresBuffer(scores.size());
    Outputs firstOut = allocateOutputs(expected);
    Outputs secondOut = allocateOutputs(expected);
    Stream firstStream;
    Stream secondStream;
    bool allocated = featuresBuffer.data() != nullptr && scoresBuffer.data() != nullptr
        && firstStream.get() != nullptr && secondStream.get() != nullptr;
    for (void* pointer : firstOut.pointers)
    {
        allocated = allocated && pointer != nullptr;
    }
    for (void* pointer : secondOut.pointers)
    {
        allocated = allocated && pointer != nullptr;
    }
    if (!report.check(section, allocated, "device buffers and two streams allocated"))
    {
        return;
    }
    cudaError_t status = cudaMemcpy(featuresBuffer.data(), features.data(), features.size(), cudaMemcpyHostToDevice);
    if (status == cudaSuccess)
    {
        status = cudaMemcpy(scoresBuffer.data(), scores.data(), scores.size(), cudaMemcpyHostToDevice);
    }
    if (!report.check(section, status == cudaSuccess, "inputs copied to the device", cudaText(status)))
    {
        return;
    }
    void const* const inputs[kNbInputs] = {featuresBuffer.data(), scoresBuffer.data()};

    // Outputs start as all-ones bytes (NaN), so an element the plugin leaves unwritten shows.
    auto run = [&](nvinfer1::IPluginV3OneRuntime& runtime, Outputs& outputs, cudaStream_t stream) {
        for (size_t i = 0; i < outputs.buffers.size(); ++i)
        {
            cudaMemsetAsync(outputs.pointers[i], 0xFF, outputs.buffers[i]->bytes(), stream);
        }
        return runtime.enqueue(io.data(), io.data() + kNbInputs, inputs, outputs.pointers.data(), nullptr, stream);
    };
    int32_t const rcFirst = run(*a.runtime, firstOut, firstStream.get());
    int32_t const rcSecond = run(*b.runtime, secondOut, secondStream.get());
    status = cudaDeviceSynchronize();
    if (status == cudaSuccess)
    {
        status = cudaGetLastError();
    }
    if (!report.check(section, rcFirst == 0 && rcSecond == 0 && status == cudaSuccess,
            "enqueue in two contexts on two streams at once",
            "rc " + std::to_string(rcFirst) + "/" + std::to_string(rcSecond) + ", " + cudaText(status) + " "
                + joined(session.logger.errorsSince(mark))))
    {
        return;
    }
    std::string const exact = "masks and gated outputs equal the NumPy reference bit for bit (B="
        + std::to_string(gate.batch) + ", C=" + std::to_string(gate.channels) + ", " + std::to_string(gate.height)
        + "x" + std::to_string(gate.width) + ", " + dataTypeName(gate.featuresType) + ", k up to "
        + std::to_string(gate.ks().back()) + ")";
    std::vector<std::string> const firstWrong = compare(firstOut, expected, names, status);
    report.check(section, firstWrong.empty() && status == cudaSuccess, "first context: " + exact, joined(firstWrong));
    std::vector<std::string> const secondWrong = compare(secondOut, expected, names, status);
    report.check(section, secondWrong.empty() && status == cudaSuccess, "second context: " + exact,
        joined(secondWrong));

    int32_t const rcAgain = run(*a.runtime, firstOut, firstStream.get());
    status = cudaStreamSynchronize(firstStream.get());
    std::vector<std::string> const again = compare(firstOut, expected, names, status);
    report.check(section, rcAgain == 0 && status == cudaSuccess && again.empty(),
        "a second enqueue into the same buffers gives the same outputs", joined(again));
}

} // namespace harness
} // namespace fornet
