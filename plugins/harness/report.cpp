/*
 * The harness's record of checks (see report.h).
 */
#include "report.h"

#include <cstdio>
#include <fstream>

namespace fornet
{
namespace harness
{

namespace
{

std::string jsonString(std::string const& text)
{
    std::string out = "\"";
    for (char c : text)
    {
        switch (c)
        {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20)
            {
                char buffer[8];
                std::snprintf(buffer, sizeof(buffer), "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
                out += buffer;
            }
            else
            {
                out += c;
            }
        }
    }
    return out + "\"";
}

} // namespace

bool Report::check(std::string const& section, bool passed, std::string const& what, std::string const& detail)
{
    mResults.push_back({section, what, passed, passed ? std::string{} : detail});
    if (!passed || mVerbose)
    {
        std::printf("%s [%s] %s%s%s\n", passed ? "ok  " : "FAIL", section.c_str(), what.c_str(),
            passed || detail.empty() ? "" : ": ", passed ? "" : detail.c_str());
        std::fflush(stdout);
    }
    return passed;
}

int Report::passed() const noexcept
{
    int n = 0;
    for (CheckResult const& result : mResults)
    {
        n += result.passed ? 1 : 0;
    }
    return n;
}

int Report::failed() const noexcept
{
    return static_cast<int>(mResults.size()) - passed();
}

int Report::count(std::string const& prefix) const noexcept
{
    int n = 0;
    for (CheckResult const& result : mResults)
    {
        n += result.section.compare(0, prefix.size(), prefix) == 0 ? 1 : 0;
    }
    return n;
}

bool Report::writeJson(std::string const& path, std::string const& tensorrtVersion) const
{
    std::ofstream out(path);
    out << "{\"tensorrt_headers\": " << jsonString(tensorrtVersion) << ", \"passed\": " << passed()
        << ", \"failed\": " << failed() << ", \"checks\": [\n";
    for (size_t i = 0; i < mResults.size(); ++i)
    {
        CheckResult const& result = mResults[i];
        out << "  {\"section\": " << jsonString(result.section) << ", \"what\": " << jsonString(result.what)
            << ", \"passed\": " << (result.passed ? "true" : "false") << ", \"detail\": " << jsonString(result.detail)
            << "}" << (i + 1 < mResults.size() ? "," : "") << "\n";
    }
    out << "]}\n";
    return static_cast<bool>(out);
}

} // namespace harness
} // namespace fornet
