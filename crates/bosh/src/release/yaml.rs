//! A small YAML emitter in the style of Go's yaml.v2 as bosh-cli uses it: no `---`,
//! two-space indentation, sequences not indented under their key, scalars plain unless they
//! would read back as something other than a string.

use serde_yaml::Value;

/// A document to emit; scalars are already rendered.
#[derive(Debug, Clone)]
pub enum Node {
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
    /// A tagged collection (`key: !tag` then the block); tagged scalars are scalars.
    Tagged(String, Box<Node>),
}

impl Node {
    pub fn str(s: &str) -> Node {
        Node::Scalar(quote(s))
    }

    pub fn bool(b: bool) -> Node {
        Node::Scalar(b.to_string())
    }

    pub fn strs(items: &[String]) -> Node {
        Node::Seq(items.iter().map(|s| Node::str(s)).collect())
    }

    /// A parsed YAML value (unknown keys carried through a rewrite).
    pub fn value(v: &Value) -> Node {
        match v {
            Value::Null => Node::Scalar("null".into()),
            Value::Bool(b) => Node::bool(*b),
            Value::Number(n) => Node::Scalar(n.to_string()),
            Value::String(s) => Node::str(s),
            Value::Sequence(items) => Node::Seq(items.iter().map(Node::value).collect()),
            Value::Mapping(m) => Node::Map(
                m.iter()
                    .map(|(k, v)| (key_text(k), Node::value(v)))
                    .collect(),
            ),
            Value::Tagged(t) => match Node::value(&t.value) {
                Node::Scalar(s) => Node::Scalar(format!("{} {s}", t.tag)),
                other => Node::Tagged(t.tag.to_string(), Box::new(other)),
            },
        }
    }

    pub fn emit(&self) -> String {
        let mut out = String::new();
        match self {
            Node::Map(entries) if !entries.is_empty() => emit_map(&mut out, entries, 0, false),
            Node::Seq(items) if !items.is_empty() => emit_seq(&mut out, items, 0, false),
            other => {
                out.push_str(&inline(other).unwrap_or_default());
                out.push('\n');
            }
        }
        out
    }
}

fn key_text(k: &Value) -> String {
    match Node::value(k) {
        Node::Scalar(s) => s,
        _ => quote(&serde_yaml::to_string(k).unwrap_or_default()),
    }
}

/// The one-line form of scalars and empty collections.
fn inline(n: &Node) -> Option<String> {
    match n {
        Node::Scalar(s) => Some(s.clone()),
        Node::Seq(v) if v.is_empty() => Some("[]".into()),
        Node::Map(v) if v.is_empty() => Some("{}".into()),
        Node::Tagged(tag, inner) => inline(inner).map(|s| format!("{tag} {s}")),
        _ => None,
    }
}

/// Emits a block collection under a key or a sequence dash that has already been written.
fn emit_block(out: &mut String, n: &Node, indent: usize) {
    match n {
        Node::Seq(items) => {
            out.push('\n');
            emit_seq(out, items, indent, false);
        }
        Node::Map(m) => {
            out.push('\n');
            emit_map(out, m, indent + 2, false);
        }
        Node::Tagged(tag, inner) => {
            out.push(' ');
            out.push_str(tag);
            // a sequence under a tag is indented, or it would read as the parent's
            let indent = if matches!(**inner, Node::Seq(_)) {
                indent + 2
            } else {
                indent
            };
            emit_block(out, inner, indent);
        }
        Node::Scalar(_) => unreachable!("scalars are inline"),
    }
}

fn emit_map(out: &mut String, entries: &[(String, Node)], indent: usize, inline_first: bool) {
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 || !inline_first {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(k);
        out.push(':');
        match (inline(v), v) {
            (Some(s), _) => {
                out.push(' ');
                out.push_str(&s);
                out.push('\n');
            }
            (None, block) => emit_block(out, block, indent),
        }
    }
}

fn emit_seq(out: &mut String, items: &[Node], indent: usize, inline_first: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !inline_first {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str("- ");
        match (inline(item), item) {
            (Some(s), _) => {
                out.push_str(&s);
                out.push('\n');
            }
            (None, Node::Map(m)) => emit_map(out, m, indent + 2, true),
            (None, Node::Seq(s)) => emit_seq(out, s, indent + 2, true),
            (None, Node::Tagged(tag, inner)) => {
                out.push_str(tag);
                emit_block(out, inner, indent + 2);
            }
            (None, Node::Scalar(_)) => unreachable!(),
        }
    }
}

/// Renders a string scalar as yaml.v2 would: double quotes when the plain text would
/// resolve to a non-string, single quotes when plain style is not allowed.
pub fn quote(s: &str) -> String {
    if s.contains('\n') || s.chars().any(|c| c.is_control() && c != '\t') {
        return double(s);
    }
    if resolves_to_non_string(s) {
        return double(s);
    }
    if plain_allowed(s) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn double(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true",
        "True", "TRUE", "n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE",
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return false;
    }
    is_int(s) || is_float(s) || is_base60(s) || is_timestamp(s)
}

fn is_int(s: &str) -> bool {
    let t: String = s.chars().filter(|&c| c != '_').collect();
    let t = t.strip_prefix(['-', '+']).unwrap_or(&t);
    let (digits, radix) = if let Some(h) = t.strip_prefix("0x") {
        (h, 16)
    } else if let Some(b) = t.strip_prefix("0b") {
        (b, 2)
    } else if let Some(o) = t.strip_prefix("0o") {
        (o, 8)
    } else {
        (t, 10)
    };
    !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix))
}

fn is_float(s: &str) -> bool {
    // ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        None => digits(mantissa),
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
    };
    let exp_ok = exp.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exp_ok
}

fn is_base60(s: &str) -> bool {
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (main, _frac) = t.split_once('.').unwrap_or((t, ""));
    let mut parts = main.split(':');
    let head = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    !rest.is_empty()
        && head.starts_with(|c: char| c.is_ascii_digit())
        && head.chars().all(|c| c.is_ascii_digit() || c == '_')
        && rest.iter().all(|p| {
            (1..=2).contains(&p.len())
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || p.as_bytes()[0] <= b'5')
        })
}

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let date_len = |b: &[u8]| -> Option<usize> {
        let mut i = 0;
        for (part, (min, max)) in [(4, 4), (1, 2), (1, 2)].into_iter().enumerate() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i - start < min || i - start > max {
                return None;
            }
            if part < 2 {
                if b.get(i) != Some(&b'-') {
                    return None;
                }
                i += 1;
            }
        }
        Some(i)
    };
    match date_len(b) {
        Some(n) if n == b.len() => true,
        Some(n) => matches!(b[n], b'T' | b't' | b' '),
        None => false,
    }
}

/// libyaml's test for plain style in block context.
fn plain_allowed(s: &str) -> bool {
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.starts_with([' ', '\t']) || s.ends_with([' ', '\t']) {
        return false;
    }
    let chars: Vec<char> = s.chars().collect();
    let followed_by_space = |i: usize| chars.get(i + 1).is_none_or(|c| *c == ' ' || *c == '\t');
    for (i, &c) in chars.iter().enumerate() {
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(c) {
                return false;
            }
            if matches!(c, '?' | ':' | '-') && followed_by_space(i) {
                return false;
            }
        } else {
            if c == ':' && followed_by_space(i) {
                return false;
            }
            if c == '#' && matches!(chars[i - 1], ' ' | '\t') {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_quoted_like_yaml_v2() {
        for (input, want) in [
            ("0+dev.1", "0+dev.1"),
            ("1.58.0", "1.58.0"),
            ("1.10", "\"1.10\""),
            ("25", "\"25\""),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("", "\"\""),
            ("0x1f", "\"0x1f\""),
            ("1e5", "\"1e5\""),
            ("1:20", "\"1:20\""),
            ("2024-10-01", "\"2024-10-01\""),
            ("sha256:abc", "sha256:abc"),
            ("non-git", "non-git"),
            ("- x", "'- x'"),
            ("*star", "'*star'"),
            ("a: b", "'a: b'"),
            ("it's # x", "'it''s # x'"),
            ("two\nlines", "\"two\\nlines\""),
        ] {
            assert_eq!(quote(input), want, "{input:?}");
        }
    }

    #[test]
    fn block_layout() {
        let doc = Node::Map(vec![
            ("name".into(), Node::str("x")),
            (
                "jobs".into(),
                Node::Seq(vec![Node::Map(vec![
                    ("name".into(), Node::str("j")),
                    ("packages".into(), Node::strs(&["a".into()])),
                    ("empty".into(), Node::Seq(vec![])),
                ])]),
            ),
            (
                "license".into(),
                Node::Map(vec![("version".into(), Node::str("v"))]),
            ),
        ]);
        assert_eq!(
            doc.emit(),
            "name: x\njobs:\n- name: j\n  packages:\n  - a\n  empty: []\nlicense:\n  version: v\n"
        );
    }
}
