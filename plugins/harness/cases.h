/*
 * The gate cases the harness drives the plugin with, read from the file that
 * plugins/harness/plugin_check.py writes from the exporter's own code (every variant's ratio set,
 * the k of each export size, each features type), and the ONNX parser's conversion of node
 * attributes into plugin fields.
 *
 * File format (one token list per line, '#' starts a comment):
 *
 *   creator TopKGate 1 fornet                  the plugin TensorRT looks up for the node
 *   case <name>                                one TopKGate node as the exporter writes it
 *   features <float32|float16> <B> <C> <h> <w>  B = -1: dynamic batch
 *   profile <min> <opt> <max>                  batch range of the optimization profile
 *   attr <name> <FLOATS|INTS|STRING|FLOAT|INT> <values...>   one node attribute
 *   data <dir>                                 GPU cases: features.bin, scores.bin, gated_<i>.bin, masks.bin
 *   end
 */
#ifndef FORNET_HARNESS_CASES_H
#define FORNET_HARNESS_CASES_H

#include "trt_side.h"

#include <NvInferRuntime.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fornet
{
namespace harness
{

//! ONNX attribute types that can become plugin fields (AttributeProto::AttributeType).
enum class AttributeType
{
    kFLOAT,
    kINT,
    kSTRING,
    kFLOATS,
    kINTS
};

struct NodeAttribute
{
    std::string name;
    AttributeType type;
    std::vector<double> numbers; //!< FLOAT(S) and INT(S) values (exact for float32 and int32)
    std::string text;            //!< STRING value
};

struct GateCase
{
    std::string name;
    nvinfer1::DataType featuresType{nvinfer1::DataType::kFLOAT};
    int64_t batch{1}; //!< -1: dynamic, see profile
    int64_t channels{0};
    int64_t height{0};
    int64_t width{0};
    int64_t profileMin{1};
    int64_t profileOpt{1};
    int64_t profileMax{1};
    std::vector<NodeAttribute> attributes;
    std::string dataDir; //!< non-empty for cases with GPU data

    NodeAttribute const* attribute(std::string const& name) const;
    //! The node's `ks` attribute as ints (what the plugin must keep per mask).
    std::vector<int32_t> ks() const;
    //! The node's `ratios` attribute as float32.
    std::vector<float> ratios() const;
};

struct CaseFile
{
    std::string creatorName;
    std::string creatorVersion;
    std::string creatorNamespace;
    std::vector<GateCase> cases;
};

//! Read `path`; throws std::runtime_error naming the line of a malformed entry.
CaseFile readCases(std::string const& path);

//! What TensorRT's ONNX parser hands createPlugin for a node with `attributes`: for each field the
//! creator names in getFieldNames(), the attribute of that name converted by the attribute's own
//! type (FLOAT(S) -> kFLOAT32, INT(S) -> kINT32 narrowed, STRING -> kCHAR); fields without an
//! attribute are left out (the parser warns). Attributes the creator does not name are not passed.
FieldSet fieldsFromNode(nvinfer1::PluginFieldCollection const* fieldNames,
    std::vector<NodeAttribute> const& attributes, std::vector<std::string>& missing);

} // namespace harness
} // namespace fornet

#endif // FORNET_HARNESS_CASES_H
