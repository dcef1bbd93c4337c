#include "util/json.h"

#include <cmath>
#include <fstream>
#include <gtest/gtest.h>

#include "tests/support/shared_data.h"

namespace cleave::json {
namespace {

// The ParseError a text produces (fails the test if it parses).
ParseError parse_error(const std::string& text) {
  try {
    parse(text);
  } catch (const ParseError& e) {
    return e;
  }
  ADD_FAILURE() << "expected a parse error for: " << text;
  return ParseError("none", 0, 0);
}

TEST(JsonParse, ScalarsAndContainers) {
  const Value v = parse(R"( {"a": 1, "b": [true, false, null], "c": "x", "d": -2.5e1} )");
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.size(), 4u);
  EXPECT_EQ(v.at("a").as_int(), 1);
  EXPECT_TRUE(v.at("b")[0].as_bool());
  EXPECT_FALSE(v.at("b")[1].as_bool());
  EXPECT_TRUE(v.at("b")[2].is_null());
  EXPECT_EQ(v.at("c").as_string(), "x");
  EXPECT_DOUBLE_EQ(v.at("d").as_double(), -25.0);
  EXPECT_TRUE(v.at("d").is_integer());  // -25 exactly
  EXPECT_EQ(v.find("missing"), nullptr);
}

TEST(JsonParse, KeepsKeyOrder) {
  const Value v = parse(R"({"z": 1, "a": 2, "m": 3})");
  const Object& members = v.as_object();
  ASSERT_EQ(members.size(), 3u);
  EXPECT_EQ(members[0].first, "z");
  EXPECT_EQ(members[1].first, "a");
  EXPECT_EQ(members[2].first, "m");
  EXPECT_EQ(v.dump(), R"({"z":1,"a":2,"m":3})");
}

TEST(JsonParse, IntegersBeyondDoublePrecisionStayExact) {
  const Value v = parse("9007199254740993");
  ASSERT_TRUE(v.is_integer());
  EXPECT_EQ(v.as_int(), 9007199254740993LL);
  EXPECT_EQ(v.as_double(), 9007199254740992.0);
  EXPECT_EQ(v.dump(), "9007199254740993");

  EXPECT_EQ(parse("-9223372036854775808").as_int(), INT64_MIN);
  const Value too_big = parse("9223372036854775808");
  EXPECT_FALSE(too_big.is_integer());
  EXPECT_DOUBLE_EQ(too_big.as_double(), 9223372036854775808.0);
  EXPECT_THROW(too_big.as_int(), TypeError);
  EXPECT_FALSE(parse("2.5").is_integer());
  EXPECT_THROW(parse("2.5").as_int(), TypeError);
}

TEST(JsonParse, NumbersUnderflowToZeroButOverflowIsAnError) {
  EXPECT_EQ(parse("1e-400").as_double(), 0.0);
  EXPECT_EQ(parse("0.0000001e-400").as_double(), 0.0);
  const ParseError e = parse_error("[1e400]");
  EXPECT_EQ(e.column(), 6u);  // where reading stopped: the number's last digit
  EXPECT_EQ(std::string(e.what()), "column 6: number overflow parsing '1e400'");
}

TEST(JsonParse, EscapesAndSurrogatePairsBecomeUtf8) {
  EXPECT_EQ(parse(R"("a\"b\\c\/d\b\f\n\r\t")").as_string(), "a\"b\\c/d\b\f\n\r\t");
  EXPECT_EQ(parse(R"("\u00e9")").as_string(), "\xC3\xA9");           // é
  EXPECT_EQ(parse(R"("\u20AC")").as_string(), "\xE2\x82\xAC");       // €
  EXPECT_EQ(parse(R"("\ud83d\ude00")").as_string(), "\xF0\x9F\x98\x80");  // U+1F600
  EXPECT_EQ(parse(R"("\u0000")").as_string(), std::string(1, '\0'));
  EXPECT_EQ(parse("\"caf\xC3\xA9\"").as_string(), "caf\xC3\xA9");  // raw UTF-8 kept
}

TEST(JsonParse, RejectsBadSurrogatesAndBadUtf8) {
  const std::string high_alone = "surrogate U+D800..U+DBFF must be followed by U+DC00..U+DFFF";
  EXPECT_NE(std::string(parse_error(R"("\ud83d")").what()).find(high_alone), std::string::npos);
  EXPECT_NE(std::string(parse_error(R"("\ude00")").what()).find("surrogate U+DC00..U+DFFF must follow U+D800..U+DBFF"),
            std::string::npos);
  EXPECT_NE(std::string(parse_error(R"("\ud83d\u0041")").what()).find(high_alone), std::string::npos);
  parse_error("\"\xC3\"");          // truncated sequence
  parse_error("\"\xC0\xAF\"");      // overlong '/'
  parse_error("\"\xED\xA0\x80\"");  // encoded surrogate
  parse_error("\"\xF5\x80\x80\x80\"");  // beyond U+10FFFF
  parse_error("\"\x80\"");          // stray continuation byte
}

// The place where reading stopped (nlohmann-json's position, as line and
// column), then its description of what it found there.
TEST(JsonParse, ErrorsGiveTheColumn) {
  ParseError e = parse_error(R"({"a": 1,})");
  EXPECT_EQ(e.line(), 1u);
  EXPECT_EQ(e.column(), 9u);
  EXPECT_EQ(std::string(e.what()), "column 9: syntax error while parsing object key - unexpected '}'; expected string literal");

  e = parse_error(R"({"a" 1})");
  EXPECT_EQ(e.column(), 6u);
  EXPECT_EQ(std::string(e.what()),
            "column 6: syntax error while parsing object separator - unexpected number literal; expected ':'");

  e = parse_error("{\n  \"a\": tru\n}");  // stops at the newline after "tru"
  EXPECT_EQ(e.line(), 2u);
  EXPECT_EQ(e.column(), 11u);
  EXPECT_EQ(std::string(e.what()), "line 2, column 11: syntax error while parsing value - invalid literal");

  // A string without its closing quote: where it opens.
  e = parse_error(R"(["a\"b", "open \" ])");
  EXPECT_EQ(std::string(e.what()), "column 10: syntax error while parsing value - invalid string: missing closing quote");
}

TEST(JsonParse, RejectsWhatRfc8259Forbids) {
  const char* bad[] = {
      "",            // no value
      "  ",          // no value
      "[1,]",        // trailing comma
      "[1 2]",       // missing comma
      "{'a': 1}",    // single quotes
      "{a: 1}",      // bare key
      "01",          // leading zero
      "-",           // sign alone
      "1.",          // no fraction digits
      ".5",          // no integer part
      "1e",          // no exponent digits
      "+1",          // plus sign
      "NaN",         // not JSON
      "Infinity",    // not JSON
      "\"a\tb\"",    // raw control character in a string
      "\"abc",       // unterminated
      "\"\\x41\"",   // invalid escape
      "\"\\u12\"",   // short \u escape
      "tru",         // truncated literal
      "{\"a\":1,\"a\":2}",  // repeated key
      "[1] x",       // trailing garbage
      "{} {}",       // two values
      "\xEF\xBB\xBF{}",  // byte order mark (parse_file skips it, parse does not)
  };
  for (const char* text : bad) {
    EXPECT_THROW(parse(text), ParseError) << "accepted: " << text;
  }
}

TEST(JsonParse, TrailingGarbageNamesItsColumn) {
  const ParseError e = parse_error("{\"text\": \"hi\"} extra");
  EXPECT_EQ(e.column(), 16u);
  EXPECT_NE(std::string(e.what()).find("expected end of input"), std::string::npos);
}

TEST(JsonParse, DepthLimit) {
  const std::string ok = std::string(kMaxDepth, '[') + std::string(kMaxDepth, ']');
  EXPECT_NO_THROW(parse(ok));
  const std::string too_deep = std::string(kMaxDepth + 1, '[') + std::string(kMaxDepth + 1, ']');
  const ParseError e = parse_error(too_deep);
  EXPECT_EQ(e.column(), static_cast<size_t>(kMaxDepth + 1));
  EXPECT_NE(std::string(e.what()).find("nesting deeper than 64"), std::string::npos);
  // A hostile input far deeper than the limit fails cleanly, not by stack overflow.
  EXPECT_THROW(parse(std::string(1000000, '[')), ParseError);
}

TEST(JsonParse, RepeatedKeyNamesTheKeyAndWhereItIs) {
  ParseError e = parse_error(R"({"a": {"b": 1, "b\u0022": 2, "b": 3}})");
  EXPECT_EQ(std::string(e.what()), R"(column 30: repeated key "b")");  // its opening quote
  e = parse_error(R"({"q\"\\": 1, "q\"\\": 2})");  // a key with escaped quote and backslash
  EXPECT_EQ(std::string(e.what()), R"(column 14: repeated key "q"\")");
  e = parse_error("[{\"x\": 1},\n {\"y\": 2,\n  \"y\": 3}]");
  EXPECT_EQ(e.line(), 3u);
  EXPECT_EQ(e.column(), 3u);
  EXPECT_EQ(std::string(e.what()), R"(line 3, column 3: repeated key "y")");
  EXPECT_EQ(parse(R"([{"k": 1}, {"k": 2}])").size(), 2u);  // the same key in two objects
}

TEST(JsonParse, ManyKeysStillDetectsRepeats) {
  std::string text = "{";
  for (int i = 0; i < 100; ++i) text += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  EXPECT_EQ(parse(text + "\"last\":0}").size(), 101u);
  const ParseError e = parse_error(text + "\"k7\":0}");
  EXPECT_NE(std::string(e.what()).find("repeated key \"k7\""), std::string::npos);
}

TEST(JsonDump, CompactAndPretty) {
  Value v = Value::object();
  v.set("r", 8);
  v.set("alpha", 16.5);
  v.set("target_modules", Array{"q_proj", "v_proj"});
  v.set("empty", Value::array());
  v.set("nested", Value::object()).set("on", true);
  v.set("none", nullptr);
  EXPECT_EQ(v.dump(),
            R"({"r":8,"alpha":16.5,"target_modules":["q_proj","v_proj"],"empty":[],)"
            R"("nested":{"on":true},"none":null})");
  EXPECT_EQ(v.dump(2),
            "{\n"
            "  \"r\": 8,\n"
            "  \"alpha\": 16.5,\n"
            "  \"target_modules\": [\n"
            "    \"q_proj\",\n"
            "    \"v_proj\"\n"
            "  ],\n"
            "  \"empty\": [],\n"
            "  \"nested\": {\n"
            "    \"on\": true\n"
            "  },\n"
            "  \"none\": null\n"
            "}");
}

TEST(JsonDump, SetReplacesInPlace) {
  Value v = parse(R"({"a":1,"b":2})");
  v.set("a", "x");
  EXPECT_EQ(v.dump(), R"({"a":"x","b":2})");
}

TEST(JsonDump, EscapesStrings) {
  const Value v(std::string("q\"b\\n\n\x01\x7f\xC3\xA9", 10));
  EXPECT_EQ(v.dump(), "\"q\\\"b\\\\n\\n\\u0001\x7f\xC3\xA9\"");
  EXPECT_EQ(parse(v.dump()), v);
}

TEST(JsonDump, NumbersRoundTripExactly) {
  const double values[] = {0.1, 1.0 / 3.0, 1e-300, 6.02214076e23, -2.5, 5e-324, 1e21};
  for (const double d : values) {
    const std::string text = Value(d).dump();
    EXPECT_EQ(parse(text).as_double(), d) << text;
  }
  EXPECT_EQ(Value(0.1).dump(), "0.1");
  EXPECT_EQ(Value(3.0).dump(), "3");
  EXPECT_EQ(Value(int64_t{-7}).dump(), "-7");
  // Beyond int64 the value is a double, and written as one.
  EXPECT_EQ(Value(uint64_t{18446744073709551615ULL}).dump(), "1.8446744073709552e+19");
  EXPECT_EQ(parse("18446744073709551615").dump(), "1.8446744073709552e+19");
}

TEST(JsonDump, InvalidUtf8BecomesTheReplacementCharacter) {
  const Value v(std::string("ab\xE2\x82", 4));  // a truncated euro sign
  EXPECT_EQ(v.dump(), "\"ab\xEF\xBF\xBD\"");
  EXPECT_EQ(parse(v.dump()).as_string(), "ab\xEF\xBF\xBD");
}

TEST(JsonDump, RefusesNonFiniteNumbers) {
  EXPECT_THROW(Value(std::nan("")).dump(), std::runtime_error);
  EXPECT_THROW(Value(HUGE_VAL).dump(), std::runtime_error);
}

TEST(JsonDump, RoundTripOfADocument) {
  const std::string text =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],)"
      R"("data_offsets":[0,24]},"s":"\u00e9\ud83d\ude00","n":[-0.5,1e-7,12345678901234]})";
  const Value v = parse(text);
  EXPECT_EQ(parse(v.dump()), v);
  EXPECT_EQ(parse(v.dump(4)), v);
  EXPECT_EQ(v.at("w").at("shape")[1].as_int(), 3);
}

TEST(JsonValue, TypeErrorsNameBothTypes) {
  try {
    parse("[1]").as_string();
    FAIL() << "expected TypeError";
  } catch (const TypeError& e) {
    EXPECT_EQ(std::string(e.what()), "expected a JSON string, got array");
  }
  EXPECT_THROW(parse("{}").at("r"), TypeError);
  EXPECT_THROW(parse("[1]")[1], TypeError);
  EXPECT_THROW(Value(Object{{"a", 1}, {"a", 2}}), TypeError);
}

TEST(JsonValue, NumbersCompareByExactValue) {
  EXPECT_EQ(parse("1.0"), Value(1));
  EXPECT_NE(parse("9007199254740993"), parse("9007199254740992"));
  EXPECT_NE(parse("1"), parse("\"1\""));
}

TEST(JsonFile, NamesTheFileInErrors) {
  const std::string dir = test::scratch_dir("json_file");
  const std::string path = dir + "/adapter_config.json";
  {
    std::ofstream out(path);
    out << "\xEF\xBB\xBF{\n  \"r\": 8,\n  \"alpha\": }\n";
  }
  try {
    parse_file(path);
    FAIL() << "expected ParseError";
  } catch (const ParseError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ": line 3, column 12: ", 0), 0u) << e.what();
  }
  {
    std::ofstream out(path);
    out << "{\n  \"r\": 8,\n  \"r\": 16\n}\n";
  }
  try {
    parse_file(path);
    FAIL() << "expected ParseError";
  } catch (const ParseError& e) {
    EXPECT_EQ(std::string(e.what()), path + ": line 3, column 3: repeated key \"r\"");
  }
  {
    std::ofstream out(path);
    out << "\xEF\xBB\xBF{\"r\": 8}\n";
  }
  EXPECT_EQ(parse_file(path).at("r").as_int(), 8);
  try {
    parse_file(dir + "/missing.json");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace cleave::json
