/*
 * Case file reader and the ONNX parser's attribute-to-field conversion (see cases.h).
 */
#include "cases.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fornet
{
namespace harness
{

namespace
{

[[noreturn]] void fail(std::string const& path, int line, std::string const& message)
{
    throw std::runtime_error(path + ":" + std::to_string(line) + ": " + message);
}

int64_t toInt(std::string const& token, std::string const& path, int line)
{
    char* end = nullptr;
    long long const value = std::strtoll(token.c_str(), &end, 10);
    if (token.empty() || *end != '\0')
    {
        fail(path, line, "'" + token + "' is not an integer");
    }
    return value;
}

double toNumber(std::string const& token, std::string const& path, int line)
{
    char* end = nullptr;
    double const value = std::strtod(token.c_str(), &end);
    if (token.empty() || *end != '\0')
    {
        fail(path, line, "'" + token + "' is not a number");
    }
    return value;
}

AttributeType attributeType(std::string const& token, std::string const& path, int line)
{
    if (token == "FLOAT")
    {
        return AttributeType::kFLOAT;
    }
    if (token == "INT")
    {
        return AttributeType::kINT;
    }
    if (token == "STRING")
    {
        return AttributeType::kSTRING;
    }
    if (token == "FLOATS")
    {
        return AttributeType::kFLOATS;
    }
    if (token == "INTS")
    {
        return AttributeType::kINTS;
    }
    fail(path, line, "unknown attribute type '" + token + "' (FLOAT, INT, STRING, FLOATS, INTS)");
}

} // namespace

NodeAttribute const* GateCase::attribute(std::string const& attributeName) const
{
    for (NodeAttribute const& attr : attributes)
    {
        if (attr.name == attributeName)
        {
            return &attr;
        }
    }
    return nullptr;
}

std::vector<int32_t> GateCase::ks() const
{
    std::vector<int32_t> values;
    if (NodeAttribute const* attr = attribute("ks"))
    {
        for (double v : attr->numbers)
        {
            values.push_back(static_cast<int32_t>(v));
        }
    }
    return values;
}

std::vector<float> GateCase::ratios() const
{
    std::vector<float> values;
    if (NodeAttribute const* attr = attribute("ratios"))
    {
        for (double v : attr->numbers)
        {
            values.push_back(static_cast<float>(v));
        }
    }
    return values;
}

CaseFile readCases(std::string const& path)
{
    std::ifstream in(path);
    if (!in)
    {
        throw std::runtime_error("cannot read the case file " + path);
    }
    CaseFile file;
    GateCase* current = nullptr;
    std::string text;
    int line = 0;
    while (std::getline(in, text))
    {
        ++line;
        text = text.substr(0, text.find('#'));
        std::istringstream words(text);
        std::vector<std::string> tokens;
        for (std::string token; words >> token;)
        {
            tokens.push_back(token);
        }
        if (tokens.empty())
        {
            continue;
        }
        std::string const& key = tokens[0];
        if (key == "creator" && tokens.size() == 4)
        {
            file.creatorName = tokens[1];
            file.creatorVersion = tokens[2];
            file.creatorNamespace = tokens[3];
        }
        else if (key == "case" && tokens.size() == 2)
        {
            if (current != nullptr)
            {
                fail(path, line, "'case' before the 'end' of case " + current->name);
            }
            file.cases.emplace_back();
            current = &file.cases.back();
            current->name = tokens[1];
        }
        else if (current == nullptr)
        {
            fail(path, line, "'" + key + "' outside a case (or malformed)");
        }
        else if (key == "features" && tokens.size() == 6)
        {
            if (tokens[1] != "float32" && tokens[1] != "float16")
            {
                fail(path, line, "features type must be float32 or float16, got " + tokens[1]);
            }
            current->featuresType = tokens[1] == "float16" ? nvinfer1::DataType::kHALF : nvinfer1::DataType::kFLOAT;
            current->batch = toInt(tokens[2], path, line);
            current->channels = toInt(tokens[3], path, line);
            current->height = toInt(tokens[4], path, line);
            current->width = toInt(tokens[5], path, line);
            if (current->batch > 0)
            {
                current->profileMin = current->profileOpt = current->profileMax = current->batch;
            }
        }
        else if (key == "profile" && tokens.size() == 4)
        {
            current->profileMin = toInt(tokens[1], path, line);
            current->profileOpt = toInt(tokens[2], path, line);
            current->profileMax = toInt(tokens[3], path, line);
        }
        else if (key == "attr" && tokens.size() >= 3)
        {
            NodeAttribute attr{tokens[1], attributeType(tokens[2], path, line), {}, {}};
            for (size_t i = 3; i < tokens.size(); ++i)
            {
                if (attr.type == AttributeType::kSTRING)
                {
                    attr.text += (i == 3 ? "" : " ") + tokens[i];
                }
                else
                {
                    attr.numbers.push_back(toNumber(tokens[i], path, line));
                }
            }
            bool const scalar = attr.type == AttributeType::kFLOAT || attr.type == AttributeType::kINT;
            if (scalar && attr.numbers.size() != 1)
            {
                fail(path, line, "attribute " + attr.name + " is a scalar but has " + std::to_string(attr.numbers.size())
                        + " values");
            }
            current->attributes.push_back(std::move(attr));
        }
        else if (key == "data" && tokens.size() == 2)
        {
            current->dataDir = tokens[1];
        }
        else if (key == "end" && tokens.size() == 1)
        {
            if (current->channels <= 0 || current->height <= 0 || current->width <= 0)
            {
                fail(path, line, "case " + current->name + " has no 'features' line");
            }
            current = nullptr;
        }
        else
        {
            fail(path, line, "malformed line: " + text);
        }
    }
    if (current != nullptr)
    {
        fail(path, line, "case " + current->name + " has no 'end'");
    }
    if (file.creatorName.empty())
    {
        fail(path, line, "no 'creator' line");
    }
    return file;
}

FieldSet fieldsFromNode(nvinfer1::PluginFieldCollection const* fieldNames,
    std::vector<NodeAttribute> const& attributes, std::vector<std::string>& missing)
{
    FieldSet fields;
    for (int32_t i = 0; fieldNames != nullptr && i < fieldNames->nbFields; ++i)
    {
        std::string const name = fieldNames->fields[i].name != nullptr ? fieldNames->fields[i].name : "";
        NodeAttribute const* found = nullptr;
        for (NodeAttribute const& attr : attributes)
        {
            if (attr.name == name)
            {
                found = &attr;
            }
        }
        if (found == nullptr)
        {
            missing.push_back(name);
            continue;
        }
        switch (found->type)
        {
        case AttributeType::kFLOAT:
        case AttributeType::kFLOATS:
        {
            std::vector<float> values(found->numbers.begin(), found->numbers.end());
            fields.addFloats(name, values);
            break;
        }
        case AttributeType::kINT:
        case AttributeType::kINTS:
        {
            std::vector<int32_t> values;
            for (double v : found->numbers)
            {
                values.push_back(static_cast<int32_t>(static_cast<int64_t>(v))); // the parser narrows INTS
            }
            fields.addInts(name, values);
            break;
        }
        case AttributeType::kSTRING: fields.addChars(name, found->text); break;
        }
    }
    return fields;
}

} // namespace harness
} // namespace fornet
