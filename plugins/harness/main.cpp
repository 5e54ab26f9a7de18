/*
 * fornet_plugin_harness: runs libfornet_plugins.so (built with FORNET_STATIC_REGISTRATION=OFF) the
 * way TensorRT runs it, without TensorRT. Built by plugins/CMakeLists.txt with
 * -DFORNET_BUILD_HARNESS=ON; driven by plugins/harness/plugin_check.py (`make plugin-check`).
 *
 *   fornet_plugin_harness --library <libfornet_plugins.so> --cases <cases.txt>
 *                         [--device] [--report <results.json>] [--verbose] [--echo-log]
 *
 * Host steps always run; --device adds the enqueue steps of the cases that have GPU data (and
 * fails when this process sees no CUDA device). Prints failed checks (every check with
 * --verbose) and a last line "<headers>: <N> checks, <P> passed, <F> failed". Exit status 0 when
 * every check passed, 1 when one failed, 2 for bad arguments or an unreadable case file.
 */
#include "cases.h"
#include "conformance.h"
#include "report.h"
#include "trt_side.h"

#include <NvInferVersion.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

namespace
{

void usage()
{
    std::fprintf(stderr,
        "usage: fornet_plugin_harness --library LIB --cases FILE [--device] [--report FILE] [--verbose] "
        "[--echo-log]\n");
}

std::string headersVersion()
{
    return "TensorRT " + std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR) + "."
        + std::to_string(NV_TENSORRT_PATCH) + " headers";
}

} // namespace

int main(int argc, char** argv)
{
    std::string library;
    std::string casesPath;
    std::string reportPath;
    bool device = false;
    bool verbose = false;
    bool echo = false;
    for (int i = 1; i < argc; ++i)
    {
        std::string const arg = argv[i];
        bool const hasValue = i + 1 < argc;
        if (arg == "--library" && hasValue)
        {
            library = argv[++i];
        }
        else if (arg == "--cases" && hasValue)
        {
            casesPath = argv[++i];
        }
        else if (arg == "--report" && hasValue)
        {
            reportPath = argv[++i];
        }
        else if (arg == "--device")
        {
            device = true;
        }
        else if (arg == "--verbose")
        {
            verbose = true;
        }
        else if (arg == "--echo-log")
        {
            echo = true;
        }
        else
        {
            std::fprintf(stderr, "error: unknown or incomplete argument '%s'\n", arg.c_str());
            usage();
            return 2;
        }
    }
    if (library.empty() || casesPath.empty())
    {
        usage();
        return 2;
    }
    fornet::harness::CaseFile cases;
    try
    {
        cases = fornet::harness::readCases(casesPath);
    }
    catch (std::exception const& error)
    {
        std::fprintf(stderr, "error: %s\n", error.what());
        return 2;
    }

    fornet::harness::Report report(verbose);
    fornet::harness::CapturingLogger logger;
    logger.setEcho(echo);
    fornet::harness::LoggerFinder finder(logger);
    {
        fornet::harness::PluginLibrary plugins;
        nvinfer1::IPluginCreatorV3One* const creator = plugins.open(library, cases, finder, report);
        if (creator != nullptr)
        {
            fornet::harness::Session session{*creator, logger, report};
            fornet::harness::checkCreator(session, cases);
            fornet::harness::checkBadFields(session);
            for (fornet::harness::GateCase const& gate : cases.cases)
            {
                if (gate.dataDir.empty()) // cases with GPU data are the device steps'
                {
                    fornet::harness::checkCase(session, gate);
                }
            }
            if (device)
            {
                std::string why;
                if (report.check("device", fornet::harness::cudaDeviceAvailable(why), "a CUDA device is visible", why))
                {
                    for (fornet::harness::GateCase const& gate : cases.cases)
                    {
                        if (!gate.dataDir.empty())
                        {
                            fornet::harness::checkDeviceCase(session, gate);
                        }
                    }
                }
            }
        }
    }
    int const total = report.passed() + report.failed();
    int const onDevice = report.count("device");
    std::printf("%s: %d checks (%d host, %d device), %d passed, %d failed\n", headersVersion().c_str(), total,
        total - onDevice, onDevice, report.passed(), report.failed());
    std::fflush(stdout); // before a sanitizer's exit-time report, which may end the process
    if (!reportPath.empty() && !report.writeJson(reportPath, headersVersion()))
    {
        std::fprintf(stderr, "error: cannot write %s\n", reportPath.c_str());
        return 2;
    }
    return report.failed() == 0 ? 0 : 1;
}
