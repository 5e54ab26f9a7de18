/*
 * The harness's record of checks: each is one answer of the plugin compared with what TensorRT
 * requires or what the op contract says, counted per section and written as JSON on request.
 */
#ifndef FORNET_HARNESS_REPORT_H
#define FORNET_HARNESS_REPORT_H

#include <string>
#include <vector>

namespace fornet
{
namespace harness
{

struct CheckResult
{
    std::string section; //!< "load", "fields", "<case>/build", "device/<case>", ...
    std::string what;    //!< the requirement, as a sentence
    bool passed;
    std::string detail; //!< what was seen when it failed
};

class Report
{
public:
    explicit Report(bool verbose)
        : mVerbose(verbose)
    {
    }

    //! Record one check; print it when it failed (every check when verbose). Returns `passed`.
    bool check(std::string const& section, bool passed, std::string const& what, std::string const& detail = {});

    int passed() const noexcept;
    int failed() const noexcept;
    //! Checks whose section starts with `prefix`.
    int count(std::string const& prefix) const noexcept;
    std::vector<CheckResult> const& results() const noexcept
    {
        return mResults;
    }
    //! Write every check to `path` as JSON; false when the file cannot be written.
    bool writeJson(std::string const& path, std::string const& tensorrtVersion) const;

private:
    std::vector<CheckResult> mResults;
    bool mVerbose;
};

} // namespace harness
} // namespace fornet

#endif // FORNET_HARNESS_REPORT_H
