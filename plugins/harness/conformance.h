/*
 * The conformance steps: load the plugin library as IPluginRegistry::loadLibrary does, then drive
 * the creator and IPluginV3 in the order TensorRT documents for the build phase (ONNX parser,
 * network, builder), the plan (serialised fields) and the runtime phase (deserialisation,
 * execution contexts), checking each answer against TensorRT's rules and the op contract
 * (docs/ops/TopKGate.md).
 */
#ifndef FORNET_HARNESS_CONFORMANCE_H
#define FORNET_HARNESS_CONFORMANCE_H

#include "cases.h"
#include "report.h"
#include "trt_side.h"

#include <NvInferRuntime.h>

#include <memory>
#include <string>
#include <vector>

namespace fornet
{
namespace harness
{

//! How TensorRT owns an IPluginV3: it deletes it.
using PluginPtr = std::unique_ptr<nvinfer1::IPluginV3>;

//! A plugin library opened with dlopen, its exported entry points and its one creator.
class PluginLibrary
{
public:
    PluginLibrary() = default;
    ~PluginLibrary();
    PluginLibrary(PluginLibrary const&) = delete;
    PluginLibrary& operator=(PluginLibrary const&) = delete;

    //! Open `path` as loadLibrary does (setLoggerFinder, then getCreators) and check what it
    //! exports; returns the TopKGate creator, or nullptr when the library cannot serve TensorRT.
    nvinfer1::IPluginCreatorV3One* open(std::string const& path, CaseFile const& cases, nvinfer1::ILoggerFinder& finder,
        Report& report);

private:
    void* mHandle{nullptr};
};

//! What every step needs.
struct Session
{
    nvinfer1::IPluginCreatorV3One& creator;
    CapturingLogger& logger;
    Report& report;
};

//! The creator's field list and the fields the exporter's node gives it.
void checkCreator(Session& session, CaseFile const& cases);
//! Missing, mistyped and out-of-range fields: refused with an error naming the field, no crash.
void checkBadFields(Session& session);
//! One exported node through the build phase, the plan and the runtime phase (host side).
void checkCase(Session& session, GateCase const& gate);
//! One case's enqueue on a GPU, outputs bit-exact against the NumPy reference in its data folder.
void checkDeviceCase(Session& session, GateCase const& gate);
//! Whether this process sees a CUDA device (explains why not in `why`).
bool cudaDeviceAvailable(std::string& why);

} // namespace harness
} // namespace fornet

#endif // FORNET_HARNESS_CONFORMANCE_H
