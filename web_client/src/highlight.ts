/** Pretty-prints tool output that is JSON and splits it into tokens for colouring. */

export type JsonTokenType = "key" | "string" | "number" | "boolean" | "null" | "punct" | "space";

export interface JsonToken {
  type: JsonTokenType;
  text: string;
}

/**
 * The output re-indented, when it is a JSON object or array; null otherwise. Bare scalars
 * ("42", "true") are left alone: a tool printing a number is not "JSON output".
 */
export function prettyJson(output: string): string | null {
  const text = output.trim();
  if (!(text.startsWith("{") || text.startsWith("["))) return null;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return null;
  }
}

// Matched against JSON.stringify output only, which is well-formed, so a regular scanner
// is exact here; any character it does not know falls through as punctuation.
const TOKEN =
  /("(?:[^"\\]|\\.)*")(?=\s*:)|("(?:[^"\\]|\\.)*")|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(true|false)|(null)|(\s+)|([\s\S])/g;

/** Tokens whose texts, joined, give back `pretty` exactly. */
export function tokenizeJson(pretty: string): JsonToken[] {
  const tokens: JsonToken[] = [];
  for (const m of pretty.matchAll(TOKEN)) {
    const type: JsonTokenType =
      m[1] !== undefined
        ? "key"
        : m[2] !== undefined
          ? "string"
          : m[3] !== undefined
            ? "number"
            : m[4] !== undefined
              ? "boolean"
              : m[5] !== undefined
                ? "null"
                : m[6] !== undefined
                  ? "space"
                  : "punct";
    const last = tokens[tokens.length - 1];
    // Runs of punctuation become one token, which keeps the DOM small for big outputs.
    if (type === "punct" && last?.type === "punct") last.text += m[0];
    else tokens.push({ type, text: m[0] });
  }
  return tokens;
}
