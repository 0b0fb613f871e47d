import { describe, expect, it } from "vitest";
import { prettyJson, tokenizeJson } from "../src/highlight.js";

describe("prettyJson", () => {
  it("re-indents objects and arrays", () => {
    expect(prettyJson('{"a":1,"b":[true,null]}')).toBe('{\n  "a": 1,\n  "b": [\n    true,\n    null\n  ]\n}');
    expect(prettyJson("  [1, 2]\n")).toBe("[\n  1,\n  2\n]");
  });

  it.each(["pong", "42", '"text"', "true", "{not json", "", "[1,"])("leaves %j alone", (output) => {
    expect(prettyJson(output)).toBeNull();
  });
});

describe("tokenizeJson", () => {
  const sample = prettyJson(
    '{"host":"localhost","port":22,"open":true,"rtt":-1.5e-3,"err":null,"quote":"say \\"hi\\": ok","list":[]}',
  )!;

  it("gives back the text exactly when joined", () => {
    expect(
      tokenizeJson(sample)
        .map((t) => t.text)
        .join(""),
    ).toBe(sample);
  });

  it("tells keys from string values, and types every literal", () => {
    const typed = tokenizeJson(sample).filter((t) => t.type !== "space" && t.type !== "punct");
    expect(typed).toEqual([
      { type: "key", text: '"host"' },
      { type: "string", text: '"localhost"' },
      { type: "key", text: '"port"' },
      { type: "number", text: "22" },
      { type: "key", text: '"open"' },
      { type: "boolean", text: "true" },
      { type: "key", text: '"rtt"' },
      { type: "number", text: "-0.0015" },
      { type: "key", text: '"err"' },
      { type: "null", text: "null" },
      { type: "key", text: '"quote"' },
      { type: "string", text: '"say \\"hi\\": ok"' },
      { type: "key", text: '"list"' },
    ]);
  });
});
