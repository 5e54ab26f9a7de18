/*
 * The host-side conformance steps (see conformance.h). Every check states one requirement: a rule
 * of TensorRT's plugin interfaces (quoted from the headers' documentation) or of the op contract
 * (docs/ops/TopKGate.md: two inputs, R + 1 outputs, linear formats, float32 or float16 features,
 * float32 scores and masks, fields `ratios` and `ks`).
 */
#include "conformance.h"

#include "plugin_flow.h"
#include "topk_gate_kernel.cuh"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <set>

namespace fornet
{
namespace harness
{

using nvinfer1::DataType;
using nvinfer1::DimsExprs;
using nvinfer1::IDimensionExpr;
using nvinfer1::PluginFieldType;
using nvinfer1::TensorFormat;
using nvinfer1::TensorRTPhase;

namespace
{

constexpr int32_t kNbInputs = 2;

using GetCreatorsFn = nvinfer1::IPluginCreatorInterface* const* (*) (int32_t&);
using SetLoggerFinderFn = void (*)(nvinfer1::ILoggerFinder*);

std::vector<DataType> allTypes()
{
    std::vector<DataType> types;
    for (int32_t i = 0; i < nvinfer1::EnumMax<DataType>(); ++i)
    {
        types.push_back(static_cast<DataType>(i));
    }
    return types;
}

std::vector<TensorFormat> allFormats()
{
    std::vector<TensorFormat> formats;
    for (int32_t i = 0; i < nvinfer1::EnumMax<TensorFormat>(); ++i)
    {
        formats.push_back(static_cast<TensorFormat>(i));
    }
    return formats;
}

//! The op contract's (type, format) table: what supportsFormatCombination must accept at `pos`
//! when the features (position 0) have `featuresType`; everything else must be refused.
bool mustAccept(int32_t pos, int32_t nbOutputs, DataType type, TensorFormat format, DataType featuresType)
{
    if (format != TensorFormat::kLINEAR)
    {
        return false;
    }
    if (pos == 0)
    {
        return type == DataType::kFLOAT || type == DataType::kHALF;
    }
    if (pos == 1 || pos == kNbInputs + nbOutputs - 1)
    {
        return type == DataType::kFLOAT; // scores and masks
    }
    return type == featuresType; // gated outputs
}

std::string positionName(int32_t pos, int32_t nbOutputs)
{
    if (pos == 0)
    {
        return "features";
    }
    if (pos == 1)
    {
        return "scores";
    }
    if (pos == kNbInputs + nbOutputs - 1)
    {
        return "masks";
    }
    return "gated_" + std::to_string(pos - kNbInputs);
}

bool mentions(std::vector<std::string> const& messages, std::string const& token)
{
    for (std::string const& message : messages)
    {
        if (message.find(token) != std::string::npos)
        {
            return true;
        }
    }
    return false;
}

//! A TensorRT-style C string answer: null, or NUL-terminated within 1024 bytes.
bool validOptionalString(char const* text)
{
    return text == nullptr || std::strlen(text) < 1024;
}

// ------------------------------------------------------------------------------ format sweep

struct FormatSweep
{
    int questions{0};
    std::vector<std::vector<std::string>> mismatches;  //!< per position
    std::vector<std::string> lookahead;                //!< answers that changed with inOut[pos + 1 ..]
    std::vector<std::vector<DataType>> combinations;   //!< complete accepted combinations (all linear)
};

//! Ask supportsFormatCombination as the builder does: position by position, every (type, format)
//! pair, with the earlier positions set to combinations already accepted and the later ones
//! holding values the plugin must not read (asked twice with different such values). Only
//! prefixes the contract also accepts are followed further (a wrong acceptance is reported where
//! it happens, and the search stays small).
FormatSweep sweepFormats(nvinfer1::IPluginV3OneBuild& build, GateCase const& gate)
{
    std::vector<nvinfer1::DynamicPluginTensorDesc> const base = dynamicDescs(gate, gate.height, gate.width);
    auto const total = static_cast<int32_t>(base.size());
    int32_t const nbOutputs = total - kNbInputs;
    FormatSweep sweep;
    sweep.mismatches.resize(static_cast<size_t>(total));
    std::vector<std::vector<std::pair<DataType, TensorFormat>>> prefixes{{}};
    for (int32_t pos = 0; pos < total; ++pos)
    {
        std::vector<std::vector<std::pair<DataType, TensorFormat>>> next;
        for (auto const& prefix : prefixes)
        {
            for (DataType type : allTypes())
            {
                for (TensorFormat format : allFormats())
                {
                    auto ask = [&](DataType laterType, TensorFormat laterFormat) {
                        std::vector<nvinfer1::DynamicPluginTensorDesc> io = base;
                        for (int32_t i = 0; i < total; ++i)
                        {
                            bool const earlier = i < pos;
                            io[i].desc.type = earlier ? prefix[i].first : (i == pos ? type : laterType);
                            io[i].desc.format = earlier ? prefix[i].second : (i == pos ? format : laterFormat);
                        }
                        return build.supportsFormatCombination(pos, io.data(), kNbInputs, nbOutputs);
                    };
                    bool const answer = ask(DataType::kINT8, TensorFormat::kCHW32);
                    bool const again = ask(DataType::kFLOAT, TensorFormat::kLINEAR);
                    sweep.questions += 2;
                    DataType const featuresType = pos == 0 ? type : prefix[0].first;
                    if (answer != again)
                    {
                        sweep.lookahead.push_back(positionName(pos, nbOutputs) + " " + dataTypeName(type) + "/"
                            + formatName(format));
                    }
                    bool const expected = mustAccept(pos, nbOutputs, type, format, featuresType);
                    if (answer != expected)
                    {
                        sweep.mismatches[static_cast<size_t>(pos)].push_back(std::string{answer ? "accepts " : "refuses "}
                            + dataTypeName(type) + "/" + formatName(format) + " (features "
                            + dataTypeName(featuresType) + ")");
                    }
                    if (answer && expected)
                    {
                        auto extended = prefix;
                        extended.emplace_back(type, format);
                        next.push_back(std::move(extended));
                    }
                }
            }
        }
        prefixes = std::move(next);
    }
    for (auto const& prefix : prefixes)
    {
        std::vector<DataType> types;
        for (auto const& [type, format] : prefix)
        {
            types.push_back(type);
        }
        sweep.combinations.push_back(types);
    }
    return sweep;
}

// -------------------------------------------------------------------------------------- answers

//! Output shapes written out for a few sizes, with the features and scores dimensions symbolic.
std::string shapesText(nvinfer1::IPluginV3OneBuild& build, GateCase const& gate, int32_t nbOutputs)
{
    SymbolicExprBuilder builder;
    IDimensionExpr const* const batch = builder.symbol("B");
    IDimensionExpr const* const height = builder.symbol("H");
    IDimensionExpr const* const width = builder.symbol("W");
    DimsExprs inputs[kNbInputs]{};
    inputs[0].nbDims = 4;
    inputs[0].d[0] = batch;
    inputs[0].d[1] = builder.constant(gate.channels);
    inputs[0].d[2] = height;
    inputs[0].d[3] = width;
    inputs[1] = inputs[0];
    inputs[1].d[1] = builder.constant(1);
    std::vector<DimsExprs> outputs(static_cast<size_t>(nbOutputs));
    if (build.getOutputShapes(inputs, kNbInputs, nullptr, 0, outputs.data(), nbOutputs, builder.facade()) != 0)
    {
        return "getOutputShapes failed";
    }
    std::string text;
    for (Bindings const& bindings : {Bindings{{"B", 1}, {"H", gate.height}, {"W", gate.width}},
             Bindings{{"B", 3}, {"H", 37}, {"W", 91}}})
    {
        for (DimsExprs const& out : outputs)
        {
            text += "(";
            for (int32_t i = 0; i < out.nbDims && i < nvinfer1::Dims::MAX_DIMS; ++i)
            {
                auto const value = builder.evaluate(out.d[i], bindings);
                text += (i == 0 ? "" : ",") + (value ? std::to_string(*value) : "?");
            }
            text += ")";
        }
    }
    return text;
}

//! Everything a plugin answers that does not depend on configuration, as one text: equal texts
//! mean a clone, a deserialised plugin or an attached plugin answers as the original does.
std::string answersOf(nvinfer1::IPluginV3* plugin, GateCase const& gate)
{
    Capabilities const caps = capabilitiesOf(plugin);
    if (caps.core == nullptr || caps.runtime == nullptr)
    {
        return "missing core or runtime capability";
    }
    std::string text = std::string{caps.core->getPluginName()} + "/" + caps.core->getPluginVersion() + "/"
        + caps.core->getPluginNamespace() + "\n" + FieldSet::describe(caps.runtime->getFieldsToSerialize());
    if (caps.build == nullptr)
    {
        return text + "no build capability";
    }
    int32_t const nbOutputs = caps.build->getNbOutputs();
    text += "outputs " + std::to_string(nbOutputs) + "\n";
    if (nbOutputs < 1 || nbOutputs > FORNET_TOPK_GATE_MAX_RATIOS + 1)
    {
        return text;
    }
    for (DataType featuresType : {DataType::kFLOAT, DataType::kHALF})
    {
        DataType const inputs[kNbInputs] = {featuresType, DataType::kFLOAT};
        std::vector<DataType> types(static_cast<size_t>(nbOutputs), static_cast<DataType>(-1));
        int32_t const rc = caps.build->getOutputDataTypes(types.data(), nbOutputs, inputs, kNbInputs);
        text += "types rc " + std::to_string(rc) + ":";
        for (DataType type : types)
        {
            text += " " + dataTypeName(type);
        }
        text += "\n";
        GateCase typed = gate;
        typed.featuresType = featuresType;
        std::vector<nvinfer1::DynamicPluginTensorDesc> io = dynamicDescs(typed, gate.height, gate.width);
        for (int32_t pos = 0; pos < static_cast<int32_t>(io.size()); ++pos)
        {
            nvinfer1::DynamicPluginTensorDesc const original = io[static_cast<size_t>(pos)];
            for (DataType type : allTypes())
            {
                for (TensorFormat format : allFormats())
                {
                    io[static_cast<size_t>(pos)].desc.type = type;
                    io[static_cast<size_t>(pos)].desc.format = format;
                    text += caps.build->supportsFormatCombination(pos, io.data(), kNbInputs, nbOutputs) ? '1' : '0';
                }
            }
            io[static_cast<size_t>(pos)] = original;
        }
        text += "\n";
    }
    return text + shapesText(*caps.build, gate, nbOutputs);
}

// ----------------------------------------------------------------------------- case: network

void checkIdentity(Session& session, std::string const& section, nvinfer1::IPluginV3* plugin)
{
    Report& report = session.report;
    nvinfer1::InterfaceInfo const info = plugin->getInterfaceInfo();
    report.check(section, std::strcmp(info.kind, "PLUGIN") == 0 && info.major == 1,
        "the plugin is an IPluginV3 (interface PLUGIN 1.x)", std::string{info.kind} + " " + std::to_string(info.major));
    Capabilities const caps = capabilitiesOf(plugin);
    report.check(section, caps.core != nullptr && caps.build != nullptr && caps.runtime != nullptr,
        "getCapabilityInterface gives core, build and runtime interfaces of the right kinds (a plugin added for the "
        "build phase must)");
    report.check(section,
        plugin->getCapabilityInterface(static_cast<nvinfer1::PluginCapabilityType>(99)) == nullptr,
        "getCapabilityInterface answers nullptr for an unknown capability");
    if (caps.core != nullptr)
    {
        std::string const identity = std::string{caps.core->getPluginName()} + "/" + caps.core->getPluginVersion()
            + "/" + caps.core->getPluginNamespace();
        std::string const creator = std::string{session.creator.getPluginName()} + "/"
            + session.creator.getPluginVersion() + "/" + session.creator.getPluginNamespace();
        report.check(section, identity == creator,
            "the core interface's name/version/namespace match the creator's (TensorRT finds the creator for the "
            "plan by them)",
            identity + " vs " + creator);
    }
}

void checkOutputTypes(Session& session, std::string const& section, nvinfer1::IPluginV3OneBuild& build,
    GateCase const& gate)
{
    Report& report = session.report;
    int32_t const nbOutputs = build.getNbOutputs();
    auto const ratios = static_cast<int32_t>(gate.ks().size());
    if (!report.check(section, nbOutputs == ratios + 1, "getNbOutputs is R + 1 (gated_0..gated_{R-1}, masks)",
            std::to_string(nbOutputs) + " for R = " + std::to_string(ratios)))
    {
        return;
    }
    std::vector<std::string> wrong;
    for (DataType featuresType : allTypes())
    {
        for (DataType scoresType : allTypes())
        {
            DataType const inputs[kNbInputs] = {featuresType, scoresType};
            std::vector<DataType> types(static_cast<size_t>(nbOutputs), static_cast<DataType>(-1));
            size_t const mark = session.logger.mark();
            int32_t const rc = build.getOutputDataTypes(types.data(), nbOutputs, inputs, kNbInputs);
            bool const valid = (featuresType == DataType::kFLOAT || featuresType == DataType::kHALF)
                && scoresType == DataType::kFLOAT;
            std::string const pair = dataTypeName(featuresType) + "," + dataTypeName(scoresType);
            if (valid)
            {
                bool ok = rc == 0 && types.back() == DataType::kFLOAT;
                for (int32_t i = 0; i + 1 < nbOutputs; ++i)
                {
                    ok = ok && types[static_cast<size_t>(i)] == featuresType;
                }
                if (!ok)
                {
                    std::string got = "rc " + std::to_string(rc) + ":";
                    for (DataType type : types)
                    {
                        got += " " + dataTypeName(type);
                    }
                    wrong.push_back("(" + pair + ") -> " + got);
                }
            }
            else if (rc == 0 || session.logger.errorsSince(mark).empty())
            {
                wrong.push_back("(" + pair + ") accepted or refused without an error message");
            }
        }
    }
    report.check(section, wrong.empty(),
        "getOutputDataTypes over every (features, scores) type pair: gated_i take the features' type, masks "
        "kFLOAT, only (kFLOAT|kHALF, kFLOAT) accepted, each refusal logged",
        joined(wrong));
    DataType const inputs[kNbInputs] = {gate.featuresType, DataType::kFLOAT};
    std::vector<DataType> types(static_cast<size_t>(nbOutputs), static_cast<DataType>(-1));
    bool ok = build.getOutputDataTypes(types.data(), nbOutputs, inputs, kNbInputs) == 0;
    for (size_t i = 0; i < types.size(); ++i)
    {
        ok = ok && types[i] == (i + 1 == types.size() ? DataType::kFLOAT : gate.featuresType);
    }
    report.check(section, ok,
        "the exported node's types (features " + dataTypeName(gate.featuresType)
            + "): gated outputs " + dataTypeName(gate.featuresType) + ", masks kFLOAT");
}

void checkOutputShapes(Session& session, std::string const& section, nvinfer1::IPluginV3OneBuild& build,
    GateCase const& gate)
{
    Report& report = session.report;
    auto const ratios = static_cast<int64_t>(gate.ks().size());
    int32_t const nbOutputs = static_cast<int32_t>(ratios) + 1;
    int64_t const maxK = gate.ks().back();

    // Symbolic batch, height and width, as for an input with dynamic dimensions.
    SymbolicExprBuilder builder;
    DimsExprs inputs[kNbInputs]{};
    inputs[0].nbDims = 4;
    inputs[0].d[0] = builder.symbol("B");
    inputs[0].d[1] = builder.constant(gate.channels);
    inputs[0].d[2] = builder.symbol("H");
    inputs[0].d[3] = builder.symbol("W");
    inputs[1] = inputs[0];
    inputs[1].d[1] = builder.constant(1);
    std::vector<DimsExprs> outputs(static_cast<size_t>(nbOutputs));
    for (DimsExprs& out : outputs)
    {
        out.nbDims = -1;
    }
    size_t mark = session.logger.mark();
    int32_t const rc
        = build.getOutputShapes(inputs, kNbInputs, nullptr, 0, outputs.data(), nbOutputs, builder.facade());
    bool const ranked = rc == 0 && std::all_of(outputs.begin(), outputs.end(), [&](DimsExprs const& out) {
        return out.nbDims == 4 && std::all_of(out.d, out.d + 4, [&](IDimensionExpr const* e) { return builder.owns(e); });
    });
    report.check(section, ranked && builder.violations().empty(),
        "getOutputShapes with symbolic B, H, W: 4-D outputs built only from the given expressions and the builder",
        "rc " + std::to_string(rc) + " " + joined(builder.violations()) + " " + joined(session.logger.errorsSince(mark)));
    if (!ranked)
    {
        return;
    }
    std::vector<std::string> wrong;
    for (Bindings const& bindings : {Bindings{{"B", gate.profileOpt}, {"H", gate.height}, {"W", gate.width}},
             Bindings{{"B", 1}, {"H", 1}, {"W", maxK}}, Bindings{{"B", 7}, {"H", 37}, {"W", 91}}})
    {
        for (int32_t o = 0; o < nbOutputs; ++o)
        {
            int64_t const channels = o + 1 == nbOutputs ? ratios : gate.channels;
            int64_t const expected[4] = {bindings.at("B"), channels, bindings.at("H"), bindings.at("W")};
            for (int32_t i = 0; i < 4; ++i)
            {
                auto const value = builder.evaluate(outputs[static_cast<size_t>(o)].d[i], bindings);
                if (!value || *value != expected[i])
                {
                    wrong.push_back(positionName(kNbInputs + o, nbOutputs) + ".d[" + std::to_string(i) + "] = "
                        + builder.describe(outputs[static_cast<size_t>(o)].d[i]) + " -> "
                        + (value ? std::to_string(*value) : "?") + ", expected " + std::to_string(expected[i]) + " at B="
                        + std::to_string(bindings.at("B")) + " H=" + std::to_string(bindings.at("H")) + " W="
                        + std::to_string(bindings.at("W")));
                }
            }
        }
    }
    report.check(section, wrong.empty(),
        "output shapes evaluated for three sizes: gated_i = (B, C, H, W), masks = (B, R, H, W)", joined(wrong));
    IDimensionExpr const* const maskChannels = outputs.back().d[1];
    report.check(section, maskChannels->isConstant() && maskChannels->getConstantValue() == ratios,
        "the masks' channel count is the build-time constant R", builder.describe(maskChannels));

    // The exported graph's own shapes: constants (a -1 batch stays symbolic).
    SymbolicExprBuilder constants;
    DimsExprs fixed[kNbInputs]{};
    fixed[0].nbDims = 4;
    fixed[0].d[0] = gate.batch < 0 ? constants.symbol("B") : constants.constant(gate.batch);
    fixed[0].d[1] = constants.constant(gate.channels);
    fixed[0].d[2] = constants.constant(gate.height);
    fixed[0].d[3] = constants.constant(gate.width);
    fixed[1] = fixed[0];
    fixed[1].d[1] = constants.constant(1);
    std::vector<DimsExprs> fixedOut(static_cast<size_t>(nbOutputs));
    bool constantOk = build.getOutputShapes(fixed, kNbInputs, nullptr, 0, fixedOut.data(), nbOutputs,
                          constants.facade())
        == 0;
    for (int32_t o = 0; constantOk && o < nbOutputs; ++o)
    {
        DimsExprs const& out = fixedOut[static_cast<size_t>(o)];
        int64_t const channels = o + 1 == nbOutputs ? ratios : gate.channels;
        constantOk = out.nbDims == 4 && out.d[1]->isConstant() && out.d[1]->getConstantValue() == channels
            && out.d[2]->isConstant() && out.d[2]->getConstantValue() == gate.height && out.d[3]->isConstant()
            && out.d[3]->getConstantValue() == gate.width
            && (gate.batch < 0 || (out.d[0]->isConstant() && out.d[0]->getConstantValue() == gate.batch));
    }
    report.check(section, constantOk, "with the exported graph's constant sizes the output shapes are constants");

    // Inputs that break the contract: refused with a message, no crash.
    auto refuses = [&](DimsExprs const (&bad)[kNbInputs], SymbolicExprBuilder& b, std::string const& what) {
        std::vector<DimsExprs> out(static_cast<size_t>(nbOutputs));
        mark = session.logger.mark();
        int32_t const code = build.getOutputShapes(bad, kNbInputs, nullptr, 0, out.data(), nbOutputs, b.facade());
        report.check(section, code != 0 && !session.logger.errorsSince(mark).empty(),
            "getOutputShapes refuses " + what + " with an error", "rc " + std::to_string(code));
    };
    {
        SymbolicExprBuilder b;
        DimsExprs bad[kNbInputs]{};
        bad[0].nbDims = 3;
        bad[0].d[0] = b.symbol("B");
        bad[0].d[1] = b.constant(gate.channels);
        bad[0].d[2] = b.symbol("HW");
        bad[1] = bad[0];
        refuses(bad, b, "3-D features and scores");
    }
    {
        SymbolicExprBuilder b;
        DimsExprs bad[kNbInputs]{};
        bad[0].nbDims = 4;
        bad[0].d[0] = b.symbol("B");
        bad[0].d[1] = b.constant(gate.channels);
        bad[0].d[2] = b.constant(gate.height);
        bad[0].d[3] = b.constant(gate.width);
        bad[1] = bad[0];
        bad[1].d[1] = b.constant(2);
        refuses(bad, b, "scores with 2 channels (B x 1 x h x w required)");
    }
    {
        SymbolicExprBuilder b;
        DimsExprs bad[kNbInputs]{};
        bad[0].nbDims = 4;
        bad[0].d[0] = b.symbol("B");
        bad[0].d[1] = b.constant(gate.channels);
        bad[0].d[2] = b.constant(gate.height);
        bad[0].d[3] = b.constant(gate.width);
        bad[1] = bad[0];
        bad[1].d[1] = b.constant(1);
        bad[1].d[3] = b.constant(gate.width + 1);
        refuses(bad, b, "scores whose width differs from the features'");
    }
}

// ----------------------------------------------------------------------------- case: builder

void checkFormats(Session& session, std::string const& section, nvinfer1::IPluginV3OneBuild& build,
    GateCase const& gate)
{
    Report& report = session.report;
    FormatSweep const sweep = sweepFormats(build, gate);
    auto const total = static_cast<int32_t>(sweep.mismatches.size());
    int32_t const nbOutputs = total - kNbInputs;
    for (int32_t pos = 0; pos < total; ++pos)
    {
        report.check(section, sweep.mismatches[static_cast<size_t>(pos)].empty(),
            "supportsFormatCombination(" + positionName(pos, nbOutputs)
                + "): exactly the table's (type, format) pairs over every DataType x TensorFormat",
            joined(sweep.mismatches[static_cast<size_t>(pos)]));
    }
    report.check(section, sweep.lookahead.empty(),
        "supportsFormatCombination(pos) reads only inOut[0..pos] (" + std::to_string(sweep.questions) + " questions)",
        joined(sweep.lookahead));
    std::set<std::vector<DataType>> const found(sweep.combinations.begin(), sweep.combinations.end());
    std::set<std::vector<DataType>> expected;
    for (DataType featuresType : {DataType::kFLOAT, DataType::kHALF})
    {
        std::vector<DataType> combination{featuresType, DataType::kFLOAT};
        combination.insert(combination.end(), static_cast<size_t>(nbOutputs - 1), featuresType);
        combination.push_back(DataType::kFLOAT);
        expected.insert(combination);
    }
    report.check(section, found == expected,
        "the builder finds exactly two format combinations: all kFLOAT, or kHALF features/gated with kFLOAT "
        "scores/masks (all kLINEAR)",
        std::to_string(found.size()) + " found");
    std::vector<std::string> inconsistent;
    for (std::vector<DataType> const& combination : found)
    {
        DataType const inputs[kNbInputs] = {combination[0], combination[1]};
        std::vector<DataType> types(static_cast<size_t>(nbOutputs));
        if (build.getOutputDataTypes(types.data(), nbOutputs, inputs, kNbInputs) != 0
            || !std::equal(types.begin(), types.end(), combination.begin() + kNbInputs))
        {
            inconsistent.push_back("features " + dataTypeName(combination[0]));
        }
    }
    report.check(section, inconsistent.empty(),
        "each supported combination has the output types getOutputDataTypes gives (TensorRT requires it)",
        joined(inconsistent));
}

void checkConfigure(Session& session, std::string const& section, nvinfer1::IPluginV3OneBuild& build,
    nvinfer1::IPluginV3OneRuntime& runtime, GateCase const& gate)
{
    Report& report = session.report;
    int64_t const maxK = gate.ks().back();
    std::vector<nvinfer1::DynamicPluginTensorDesc> descs = dynamicDescs(gate, gate.height, gate.width);
    auto const nbOutputs = static_cast<int32_t>(descs.size()) - kNbInputs;
    size_t mark = session.logger.mark();
    report.check(section, build.configurePlugin(descs.data(), kNbInputs, descs.data() + kNbInputs, nbOutputs) == 0,
        "configurePlugin accepts the profile (batch " + std::to_string(gate.profileMin) + ".."
            + std::to_string(gate.profileMax) + ", grid " + std::to_string(gate.height) + "x"
            + std::to_string(gate.width) + ")",
        joined(session.logger.errorsSince(mark)));
    report.check(section,
        build.getWorkspaceSize(descs.data(), kNbInputs, descs.data() + kNbInputs, nbOutputs) == 0,
        "getWorkspaceSize is 0 (the kernel needs no scratch memory)");
    std::vector<nvinfer1::PluginTensorDesc> opt = tensorDescs(gate, gate.profileOpt, gate.height, gate.width);
    mark = session.logger.mark();
    report.check(section, runtime.onShapeChange(opt.data(), kNbInputs, opt.data() + kNbInputs, nbOutputs) == 0,
        "onShapeChange at the profile's opt sizes (the builder's call)", joined(session.logger.errorsSince(mark)));
    int32_t const nbTactics = build.getNbTactics();
    report.check(section,
        nbTactics == 0 && runtime.setTactic(0) == 0 && build.getFormatCombinationLimit() > 0
            && validOptionalString(build.getTimingCacheID()) && validOptionalString(build.getMetadataString()),
        "the optional builder queries: no custom tactics, the default tactic 0 accepted, a positive format limit, "
        "timing-cache ID and metadata null or short strings");

    auto refuses = [&](std::vector<nvinfer1::DynamicPluginTensorDesc> bad, int32_t outputs, std::string const& what,
                       std::string const& token) {
        mark = session.logger.mark();
        int32_t const rc = build.configurePlugin(bad.data(), kNbInputs, bad.data() + kNbInputs, outputs);
        std::vector<std::string> const errors = session.logger.errorsSince(mark);
        report.check(section, rc != 0 && mentions(errors, token),
            "configurePlugin refuses " + what + " with an error naming '" + token + "'",
            "rc " + std::to_string(rc) + " " + joined(errors));
    };
    refuses(dynamicDescs(gate, 1, maxK - 1), nbOutputs,
        "a grid of " + std::to_string(maxK - 1) + " cells (the largest k is " + std::to_string(maxK) + ")", "k");
    std::vector<nvinfer1::DynamicPluginTensorDesc> mismatched = descs;
    for (nvinfer1::Dims* dims : {&mismatched[1].desc.dims, &mismatched[1].min, &mismatched[1].opt, &mismatched[1].max})
    {
        dims->d[3] += 1;
    }
    refuses(mismatched, nbOutputs, "scores whose width differs from the features'", "scores");
    std::vector<nvinfer1::DynamicPluginTensorDesc> largerBatch = descs;
    largerBatch[1].max.d[0] += 1;
    refuses(largerBatch, nbOutputs, "a profile whose scores batch range differs from the features'", "scores");
    refuses(descs, nbOutputs - 1, "one output too few", "outputs");
}

// ------------------------------------------------------------------------ case: plan, runtime

bool serialisedFieldsHold(nvinfer1::PluginFieldCollection const* fc, GateCase const& gate, std::string& problem)
{
    if (fc == nullptr)
    {
        problem = "nullptr";
        return false;
    }
    std::vector<int32_t> const ks = gate.ks();
    std::vector<float> const ratios = gate.ratios();
    bool haveKs = false;
    bool haveRatios = false;
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        nvinfer1::PluginField const& field = fc->fields[i];
        std::string const name = field.name != nullptr ? field.name : "";
        if (name == "ks" && field.data != nullptr && field.length == static_cast<int32_t>(ks.size()))
        {
            haveKs = true;
            for (int32_t j = 0; j < field.length; ++j)
            {
                int64_t const value = field.type == PluginFieldType::kINT64 ? static_cast<int64_t const*>(field.data)[j]
                    : field.type == PluginFieldType::kINT32 ? static_cast<int32_t const*>(field.data)[j]
                                                            : -1;
                haveKs = haveKs && value == ks[static_cast<size_t>(j)];
            }
        }
        if (name == "ratios" && field.data != nullptr && field.type == PluginFieldType::kFLOAT32
            && field.length == static_cast<int32_t>(ratios.size()))
        {
            haveRatios = std::memcmp(field.data, ratios.data(), ratios.size() * sizeof(float)) == 0;
        }
    }
    problem = std::string{haveKs ? "" : "ks missing or changed; "} + (haveRatios ? "" : "ratios missing or changed; ")
        + FieldSet::describe(fc);
    return haveKs && haveRatios;
}

void checkContexts(Session& session, std::string const& section, nvinfer1::IPluginV3* engine, GateCase const& gate,
    std::string const& answers)
{
    Report& report = session.report;
    Capabilities const engineCaps = capabilitiesOf(engine);
    ResourceContext first;
    ResourceContext second;
    PluginPtr one{engineCaps.runtime->attachToContext(&first)};
    PluginPtr two{engineCaps.runtime->attachToContext(&second)};
    if (!report.check(section, one && two && one.get() != engine && two.get() != engine && one.get() != two.get(),
            "attachToContext gives each execution context its own new plugin"))
    {
        return;
    }
    report.check(section, answersOf(one.get(), gate) == answers && answersOf(two.get(), gate) == answers,
        "attached plugins answer as the deserialised one");
    one.reset();
    Capabilities const caps = capabilitiesOf(two.get());
    report.check(section, caps.runtime != nullptr && answersOf(two.get(), gate) == answers
            && answersOf(engine, gate) == answers,
        "destroying one context's plugin leaves the other and the engine's intact");
    if (caps.runtime == nullptr)
    {
        return;
    }
    auto const nbOutputs = static_cast<int32_t>(gate.ks().size()) + 1;
    std::vector<std::string> refused;
    for (int64_t batch : {gate.profileMin, gate.profileOpt, gate.profileMax})
    {
        std::vector<nvinfer1::PluginTensorDesc> io = tensorDescs(gate, batch, gate.height, gate.width);
        size_t const mark = session.logger.mark();
        if (caps.runtime->onShapeChange(io.data(), kNbInputs, io.data() + kNbInputs, nbOutputs) != 0)
        {
            refused.push_back("batch " + std::to_string(batch) + ": " + joined(session.logger.errorsSince(mark)));
        }
    }
    report.check(section, refused.empty(), "onShapeChange accepts every batch of the profile", joined(refused));

    auto refuses = [&](std::vector<nvinfer1::PluginTensorDesc> bad, std::string const& what, std::string const& token) {
        size_t const mark = session.logger.mark();
        int32_t const rc = caps.runtime->onShapeChange(bad.data(), kNbInputs, bad.data() + kNbInputs, nbOutputs);
        std::vector<std::string> const errors = session.logger.errorsSince(mark);
        report.check(section, rc != 0 && mentions(errors, token),
            "onShapeChange refuses " + what + " with an error naming '" + token + "'",
            "rc " + std::to_string(rc) + " " + joined(errors));
    };
    int64_t const maxK = gate.ks().back();
    refuses(tensorDescs(gate, 1, 1, maxK - 1), "a grid smaller than the largest k", "k");
    std::vector<nvinfer1::PluginTensorDesc> mismatched = tensorDescs(gate, 1, gate.height, gate.width);
    mismatched[1].dims.d[2] += 1;
    refuses(mismatched, "scores whose height differs from the features'", "scores");
    std::vector<nvinfer1::PluginTensorDesc> twoChannels = tensorDescs(gate, 1, gate.height, gate.width);
    twoChannels[1].dims.d[1] = 2;
    refuses(twoChannels, "scores with 2 channels", "scores");

    // enqueue paths that need no GPU: argument checks before any CUDA call.
    std::vector<nvinfer1::PluginTensorDesc> empty = tensorDescs(gate, 0, gate.height, gate.width);
    std::vector<void*> none(static_cast<size_t>(nbOutputs), nullptr);
    void const* const noInputs[kNbInputs] = {nullptr, nullptr};
    size_t mark = session.logger.mark();
    report.check(section,
        caps.runtime->enqueue(empty.data(), empty.data() + kNbInputs, noInputs, none.data(), nullptr, nullptr) == 0,
        "enqueue of an empty batch (B = 0) succeeds without touching its buffers",
        joined(session.logger.errorsSince(mark)));
    std::vector<nvinfer1::PluginTensorDesc> small = tensorDescs(gate, 1, 1, maxK - 1);
    int dummy = 0;
    void const* const inputs[kNbInputs] = {&dummy, &dummy};
    std::vector<void*> outputs(static_cast<size_t>(nbOutputs), &dummy);
    mark = session.logger.mark();
    int32_t const rc = caps.runtime->enqueue(small.data(), small.data() + kNbInputs, inputs, outputs.data(), nullptr,
        nullptr);
    report.check(section, rc != 0 && !session.logger.errorsSince(mark).empty(),
        "enqueue refuses a grid smaller than the largest k before launching anything, with an error");
}

} // namespace

// --------------------------------------------------------------------------------------- library

PluginLibrary::~PluginLibrary()
{
    if (mHandle != nullptr)
    {
        dlclose(mHandle);
    }
}

nvinfer1::IPluginCreatorV3One* PluginLibrary::open(
    std::string const& path, CaseFile const& cases, nvinfer1::ILoggerFinder& finder, Report& report)
{
    std::string const section = "load";
    mHandle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    char const* const error = mHandle == nullptr ? dlerror() : nullptr;
    if (!report.check(section, mHandle != nullptr,
            "dlopen with every symbol resolved in a process without libnvinfer (IPluginRegistry::loadLibrary)",
            error != nullptr ? error : ""))
    {
        return nullptr;
    }
    bool noTensorRT = dlsym(RTLD_DEFAULT, "getPluginRegistry") == nullptr;
    for (char const* name : {"libnvinfer.so", "libnvinfer.so.10", "libnvinfer.so.11"})
    {
        void* const loaded = dlopen(name, RTLD_NOLOAD | RTLD_LAZY);
        noTensorRT = noTensorRT && loaded == nullptr;
        if (loaded != nullptr)
        {
            dlclose(loaded);
        }
    }
    report.check(section, noTensorRT,
        "loading the library pulls in no libnvinfer (a getCreators-only build needs TensorRT's headers alone)");
    auto const setLoggerFinder = reinterpret_cast<SetLoggerFinderFn>(dlsym(mHandle, "setLoggerFinder"));
    auto const getCreators = reinterpret_cast<GetCreatorsFn>(dlsym(mHandle, "getCreators"));
    if (!report.check(section, setLoggerFinder != nullptr && getCreators != nullptr,
            "exports setLoggerFinder and getCreators (what loadLibrary looks up)"))
    {
        return nullptr;
    }
    setLoggerFinder(&finder);
    int32_t count = -1;
    nvinfer1::IPluginCreatorInterface* const* creators = getCreators(count);
    if (!report.check(section, count == 1 && creators != nullptr && creators[0] != nullptr,
            "getCreators gives one creator", "count " + std::to_string(count)))
    {
        return nullptr;
    }
    int32_t again = -1;
    nvinfer1::IPluginCreatorInterface* const* const repeated = getCreators(again);
    report.check(section, again == 1 && repeated != nullptr && repeated[0] == creators[0],
        "getCreators gives the same creator on every call");
    nvinfer1::InterfaceInfo const info = creators[0]->getInterfaceInfo();
    if (!report.check(section, std::strcmp(info.kind, "PLUGIN CREATOR_V3ONE") == 0 && info.major == 1,
            "the creator is an IPluginCreatorV3One (interface PLUGIN CREATOR_V3ONE 1.x)",
            std::string{info.kind} + " " + std::to_string(info.major)))
    {
        return nullptr;
    }
    auto* creator = static_cast<nvinfer1::IPluginCreatorV3One*>(creators[0]);
    std::string const identity = std::string{creator->getPluginName()} + "/" + creator->getPluginVersion() + "/"
        + creator->getPluginNamespace();
    std::string const expected = cases.creatorName + "/" + cases.creatorVersion + "/" + cases.creatorNamespace;
    report.check(section, identity == expected,
        "the creator is " + expected + " (the node's op_type, plugin_version and plugin_namespace)", identity);
    return creator;
}

// ---------------------------------------------------------------------------------------- steps

void checkCreator(Session& session, CaseFile const& cases)
{
    Report& report = session.report;
    std::string const section = "creator";
    nvinfer1::PluginFieldCollection const* const names = session.creator.getFieldNames();
    if (!report.check(section, names != nullptr && names->nbFields >= 0 && (names->nbFields == 0 || names->fields),
            "getFieldNames gives a field list"))
    {
        return;
    }
    std::set<std::string> described;
    bool typed = true;
    for (int32_t i = 0; i < names->nbFields; ++i)
    {
        nvinfer1::PluginField const& field = names->fields[i];
        std::string const name = field.name != nullptr ? field.name : "(null)";
        described.insert(name);
        typed = typed
            && ((name == "ratios" && field.type == PluginFieldType::kFLOAT32)
                || (name == "ks" && field.type == PluginFieldType::kINT32));
    }
    report.check(section, described == std::set<std::string>{"ratios", "ks"} && typed,
        "getFieldNames names exactly 'ratios' (kFLOAT32) and 'ks' (kINT32), the fields the parser fills from FLOATS "
        "and INTS attributes",
        FieldSet::describe(names));
    report.check(section, session.creator.getFieldNames() == names,
        "getFieldNames gives the same list on every call (TensorRT may keep the pointer)");
    std::vector<std::string> missing;
    for (GateCase const& gate : cases.cases)
    {
        std::vector<std::string> absent;
        fieldsFromNode(names, gate.attributes, absent);
        for (std::string const& name : absent)
        {
            missing.push_back(gate.name + ": " + name);
        }
    }
    report.check(section, missing.empty(),
        "every field the creator names is an attribute of every exported node (" + std::to_string(cases.cases.size())
            + " nodes)",
        joined(missing));
}

void checkBadFields(Session& session)
{
    Report& report = session.report;
    std::string const section = "fields";
    std::vector<float> const ratios{0.1F, 0.2F, 0.3F, 0.4F};
    std::vector<int32_t> const ks{13, 26, 38, 51};

    auto refused = [&](FieldSet fields, std::string const& what, std::string const& token, bool nullCollection = false) {
        size_t const mark = session.logger.mark();
        PluginPtr plugin{session.creator.createPlugin(
            "bad", nullCollection ? nullptr : fields.collection(), TensorRTPhase::kBUILD)};
        std::vector<std::string> const errors = session.logger.errorsSince(mark);
        report.check(section, plugin == nullptr && mentions(errors, token),
            "createPlugin refuses " + what + " with an error naming '" + token + "'",
            std::string{plugin ? "accepted" : "refused"} + "; logged: " + joined(errors));
    };
    auto accepted = [&](FieldSet fields, std::string const& what) {
        size_t const mark = session.logger.mark();
        PluginPtr plugin{session.creator.createPlugin("variant", fields.collection(), TensorRTPhase::kBUILD)};
        std::string problem;
        bool const same = plugin != nullptr
            && serialisedFieldsHold(capabilitiesOf(plugin.get()).runtime->getFieldsToSerialize(),
                GateCase{"variant", DataType::kFLOAT, 1, 1, 8, 16, 1, 1, 1,
                    {{"ratios", AttributeType::kFLOATS, {0.1F, 0.2F, 0.3F, 0.4F}, {}},
                        {"ks", AttributeType::kINTS, {13, 26, 38, 51}, {}}},
                    {}},
                problem);
        report.check(section, same, "createPlugin accepts " + what + " and keeps the same ratios and ks",
            problem + joined(session.logger.errorsSince(mark)));
    };

    {
        FieldSet none;
        refused(none, "a null field collection", "ks", true);
        refused(none, "an empty field collection", "ks");
    }
    {
        FieldSet f;
        f.addFloats("ratios", ratios);
        refused(f, "a node without 'ks'", "ks");
    }
    {
        FieldSet f;
        f.addInts("ks", ks);
        refused(f, "a node without 'ratios'", "ratios");
    }
    {
        FieldSet f;
        f.addFloats("ratios", ratios);
        f.addFloats("ks", {13, 26, 38, 51});
        refused(f, "'ks' as FLOATS (kFLOAT32)", "ks");
    }
    {
        FieldSet f;
        f.addFloats("ratios", ratios);
        f.addChars("ks", "13,26,38,51");
        refused(f, "'ks' as a STRING (kCHAR)", "ks");
    }
    {
        FieldSet f;
        f.addInts("ratios", {1, 2, 3, 4});
        f.addInts("ks", ks);
        refused(f, "'ratios' as INTS (kINT32)", "ratios");
    }
    {
        FieldSet f;
        f.addFloats("ratios", ratios);
        f.addInts("ks", {0, 26, 38, 51});
        refused(f, "a k of 0", "ks");
    }
    {
        FieldSet f;
        f.addFloats("ratios", ratios);
        f.addInts("ks", {-13, 26, 38, 51});
        refused(f, "a negative k", "ks");
    }
    {
        FieldSet f;
        f.addFloats("ratios", ratios);
        f.addInts("ks", {13, 12, 38, 51});
        refused(f, "decreasing ks", "ks");
    }
    {
        FieldSet f;
        f.addFloats("ratios", ratios);
        f.addInt64s("ks", {13, 26, 38, int64_t{1} << 33});
        refused(f, "a kINT64 k beyond int32", "ks");
    }
    {
        FieldSet f;
        f.addFloats("ratios", {0.1F});
        f.addInts("ks", ks);
        refused(f, "1 ratio for 4 ks", "ratios");
    }
    {
        FieldSet f;
        std::vector<float> const manyRatios(FORNET_TOPK_GATE_MAX_RATIOS + 1, 0.1F);
        std::vector<int32_t> const manyKs(FORNET_TOPK_GATE_MAX_RATIOS + 1, 5);
        f.addFloats("ratios", manyRatios);
        f.addInts("ks", manyKs);
        refused(f, std::to_string(FORNET_TOPK_GATE_MAX_RATIOS + 1) + " ratios (the kernel takes at most "
                + std::to_string(FORNET_TOPK_GATE_MAX_RATIOS) + ")",
            "ks");
    }
    {
        FieldSet f;
        f.addFloats("ratios", {});
        f.addInts("ks", {});
        refused(f, "empty INTS/FLOATS attributes", "ks");
    }
    {
        FieldSet f;
        f.addFloats("ratios", ratios);
        f.addRaw("ks", nullptr, PluginFieldType::kINT32, 4);
        refused(f, "'ks' with 4 values and a null data pointer", "ks");
    }
    {
        FieldSet f;
        f.addFloats("ratios", ratios);
        f.addRaw("ks", ks.data(), PluginFieldType::kINT32, -4);
        refused(f, "'ks' with a negative length", "ks");
    }
    {
        FieldSet f;
        f.addFloats("ratios", {0.1F, 0.2F, 1.5F, 0.4F});
        f.addInts("ks", ks);
        refused(f, "a ratio of 1.5 (ratios lie in (0, 1])", "ratios");
    }
    {
        FieldSet f;
        f.addFloats("ratios", {0.1F, std::numeric_limits<float>::quiet_NaN(), 0.3F, 0.4F});
        f.addInts("ks", ks);
        refused(f, "a NaN ratio", "ratios");
    }
    {
        FieldSet f;
        f.addFloats("ratios", ratios);
        f.addInts("ks", ks);
        f.addRaw("ks", nullptr, PluginFieldType::kINT32, 0);
        size_t const mark = session.logger.mark();
        PluginPtr plugin{session.creator.createPlugin("bad", f.collection(), TensorRTPhase::kRUNTIME)};
        report.check(section, plugin == nullptr && !session.logger.errorsSince(mark).empty(),
            "createPlugin(kRUNTIME) refuses corrupt serialised fields (an empty 'ks') with an error");
    }
    {
        FieldSet f;
        f.addDoubles("ratios", {0.1F, 0.2F, 0.3F, 0.4F});
        f.addInt64s("ks", {13, 26, 38, 51});
        accepted(f, "kFLOAT64 ratios and kINT64 ks (what numpy arrays give through the Python API)");
    }
    {
        FieldSet f;
        f.addChars("plugin_namespace", "fornet");
        f.addInts("ks", ks);
        f.addChars("plugin_version", "1");
        f.addFloats("ratios", ratios);
        f.addFloats("unknown_field", {1.0F});
        accepted(f, "fields in another order with extra ones it does not use");
    }
}

void checkCase(Session& session, GateCase const& gate)
{
    Report& report = session.report;
    std::string const network = gate.name + "/network";
    FieldSet fields = parserFields(session.creator, gate);
    size_t const mark = session.logger.mark();
    PluginPtr built{session.creator.createPlugin(gate.name.c_str(), fields.collection(), TensorRTPhase::kBUILD)};
    if (!report.check(network, built != nullptr,
            "createPlugin(kBUILD) accepts the fields TensorRT's ONNX parser makes of the exported node",
            joined(session.logger.errorsSince(mark))))
    {
        return;
    }
    checkIdentity(session, network, built.get());
    Capabilities const caps = capabilitiesOf(built.get());
    if (caps.core == nullptr || caps.build == nullptr || caps.runtime == nullptr)
    {
        return;
    }
    checkOutputTypes(session, network, *caps.build, gate);
    if (caps.build->getNbOutputs() != static_cast<int32_t>(gate.ks().size()) + 1)
    {
        return;
    }
    checkOutputShapes(session, network, *caps.build, gate);
    std::string const answers = answersOf(built.get(), gate);

    // The builder works on a clone; the clone must outlive the network's plugin.
    std::string const builder = gate.name + "/builder";
    PluginPtr clone{built->clone()};
    if (!report.check(builder, clone != nullptr && clone.get() != built.get(), "clone gives a new plugin"))
    {
        return;
    }
    report.check(builder, answersOf(clone.get(), gate) == answers, "the clone answers as the original");
    Capabilities const cloneCaps = capabilitiesOf(clone.get());
    checkFormats(session, builder, *cloneCaps.build, gate);
    checkConfigure(session, builder, *cloneCaps.build, *cloneCaps.runtime, gate);
    PluginPtr configuredClone{clone->clone()};
    report.check(builder, configuredClone != nullptr && answersOf(configuredClone.get(), gate) == answers,
        "a clone of a configured plugin answers as the original");
    configuredClone.reset();
    built.reset();
    report.check(builder, answersOf(clone.get(), gate) == answers, "the clone outlives the original");

    // The plan keeps the fields the runtime interface serialises.
    std::string const plan = gate.name + "/plan";
    nvinfer1::PluginFieldCollection const* const serialised = cloneCaps.runtime->getFieldsToSerialize();
    std::string problem;
    report.check(plan, serialisedFieldsHold(serialised, gate, problem),
        "getFieldsToSerialize holds the node's ks and ratios", problem);
    std::string const firstText = FieldSet::describe(serialised);
    report.check(plan, FieldSet::describe(cloneCaps.runtime->getFieldsToSerialize()) == firstText,
        "getFieldsToSerialize gives the same fields on every call");
    std::string error;
    std::optional<FieldSet> stored = FieldSet::copyOf(serialised, error);
    if (!report.check(plan, stored.has_value(), "every serialised field has a known type, a length and data", error))
    {
        return;
    }
    clone.reset();

    // Runtime phase: deserialise, then one plugin per execution context.
    std::string const runtime = gate.name + "/runtime";
    size_t const runtimeMark = session.logger.mark();
    PluginPtr engine{session.creator.createPlugin(gate.name.c_str(), stored->collection(), TensorRTPhase::kRUNTIME)};
    stored.reset(); // the plan's copy of the fields is gone once the engine is deserialised
    if (!report.check(runtime, engine != nullptr, "createPlugin(kRUNTIME) from the serialised fields",
            joined(session.logger.errorsSince(runtimeMark))))
    {
        return;
    }
    Capabilities const engineCaps = capabilitiesOf(engine.get());
    if (!report.check(runtime, engineCaps.core != nullptr && engineCaps.runtime != nullptr,
            "the deserialised plugin has core and runtime capabilities (required in the runtime phase)"))
    {
        return;
    }
    report.check(runtime, answersOf(engine.get(), gate) == answers,
        "the deserialised plugin answers as the built one (same identity, types, formats, shapes, fields)");
    report.check(runtime, FieldSet::describe(engineCaps.runtime->getFieldsToSerialize()) == firstText,
        "serialising the deserialised plugin gives the plan's fields again");
    checkContexts(session, runtime, engine.get(), gate, answers);
}

} // namespace harness
} // namespace fornet
