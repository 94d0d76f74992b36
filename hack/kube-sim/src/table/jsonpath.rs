//! The subset of Kubernetes JSONPath that CRD printer columns use: fields, indexes, wildcards,
//! recursive descent and filters (`[?(@.type=="Ready")]`).

use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    Descendants,
    Filter(Filter),
}

#[derive(Clone, Debug, PartialEq)]
struct Filter {
    left: Vec<Step>,
    /// None: the filter only tests that the left side exists.
    compare: Option<(Op, Value)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Evaluates a Kubernetes JSONPath against an object, returning every match in order; a path that
/// does not parse matches nothing. Supported: `.a.b`, `.a[0]` (and `[-1]`), `.a[*].b`, `.*`, `..a`,
/// `['key.with.dots']`, and filters `[?(@.type=="X")]` / `[?(@.type=='X')]` with `==`, `!=`, `<`,
/// `<=`, `>`, `>=` against a string, number or boolean, or `[?(@.field)]` for presence. The path may
/// be wrapped in `{}` and start with `$`.
pub fn jsonpath(obj: &Value, path: &str) -> Vec<Value> {
    let Some(steps) = parse_path(path) else { return Vec::new() };
    eval(obj, &steps).into_iter().cloned().collect()
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let mut p = path.trim();
    if let Some(inner) = p.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
        p = inner.trim();
    }
    let p = p.strip_prefix('$').unwrap_or(p);
    let chars: Vec<char> = p.chars().collect();
    let (steps, end) = parse_steps(&chars, 0)?;
    (end == chars.len()).then_some(steps)
}

/// Parses steps from `i` until the end or a character that cannot continue a path (an operator
/// or space inside a filter); returns the steps and where parsing stopped.
fn parse_steps(c: &[char], mut i: usize) -> Option<(Vec<Step>, usize)> {
    let mut steps = Vec::new();
    while i < c.len() {
        match c[i] {
            '.' if c.get(i + 1) == Some(&'.') => {
                steps.push(Step::Descendants);
                i += 2;
                if c.get(i) == Some(&'*') {
                    steps.push(Step::Wildcard);
                    i += 1;
                } else {
                    let (name, next) = field_name(c, i);
                    if !name.is_empty() {
                        steps.push(Step::Field(name));
                    }
                    i = next;
                }
            }
            '.' => {
                i += 1;
                if c.get(i) == Some(&'*') {
                    steps.push(Step::Wildcard);
                    i += 1;
                } else {
                    let (name, next) = field_name(c, i);
                    // A lone trailing "." (or "$.") names the object itself.
                    if !name.is_empty() {
                        steps.push(Step::Field(name));
                    }
                    i = next;
                }
            }
            '[' => {
                let (step, next) = parse_bracket(c, i + 1)?;
                steps.push(step);
                i = next;
            }
            _ => break,
        }
    }
    Some((steps, i))
}

fn field_name(c: &[char], start: usize) -> (String, usize) {
    let mut i = start;
    while i < c.len() && (c[i].is_alphanumeric() || matches!(c[i], '_' | '-' | '/' | '$')) {
        i += 1;
    }
    (c[start..i].iter().collect(), i)
}

/// Parses what follows `[`, returning the step and the index after the closing `]`.
fn parse_bracket(c: &[char], mut i: usize) -> Option<(Step, usize)> {
    let skip_ws = |mut i: usize| {
        while c.get(i).is_some_and(|ch| ch.is_whitespace()) {
            i += 1;
        }
        i
    };
    i = skip_ws(i);
    let step = match *c.get(i)? {
        '*' => {
            i += 1;
            Step::Wildcard
        }
        q @ ('\'' | '"') => {
            let (s, next) = quoted(c, i, q)?;
            i = next;
            Step::Field(s)
        }
        '?' => {
            i = skip_ws(i + 1);
            if c.get(i) != Some(&'(') {
                return None;
            }
            let (filter, next) = parse_filter(c, i + 1)?;
            i = next;
            Step::Filter(filter)
        }
        _ => {
            let start = i;
            while c.get(i).is_some_and(|ch| ch.is_ascii_digit() || *ch == '-') {
                i += 1;
            }
            let n: String = c[start..i].iter().collect();
            Step::Index(n.parse().ok()?)
        }
    };
    i = skip_ws(i);
    (c.get(i) == Some(&']')).then_some((step, i + 1))
}

fn quoted(c: &[char], start: usize, q: char) -> Option<(String, usize)> {
    let mut s = String::new();
    let mut i = start + 1;
    while let Some(&ch) = c.get(i) {
        match ch {
            '\\' if c.get(i + 1).is_some() => {
                s.push(c[i + 1]);
                i += 2;
            }
            ch if ch == q => return Some((s, i + 1)),
            ch => {
                s.push(ch);
                i += 1;
            }
        }
    }
    None
}

/// Parses `@.path [op literal])` after `?(`, returning the index after `)`.
fn parse_filter(c: &[char], mut i: usize) -> Option<(Filter, usize)> {
    while c.get(i).is_some_and(|ch| ch.is_whitespace()) {
        i += 1;
    }
    if c.get(i) != Some(&'@') {
        return None;
    }
    let (left, mut i) = parse_steps(c, i + 1)?;
    let ws = |mut i: usize| {
        while c.get(i).is_some_and(|ch| ch.is_whitespace()) {
            i += 1;
        }
        i
    };
    i = ws(i);
    if c.get(i) == Some(&')') {
        return Some((Filter { left, compare: None }, i + 1));
    }
    let two: String = c[i..c.len().min(i + 2)].iter().collect();
    let (op, len) = match two.as_str() {
        "==" => (Op::Eq, 2),
        "!=" => (Op::Ne, 2),
        "<=" => (Op::Le, 2),
        ">=" => (Op::Ge, 2),
        _ if two.starts_with('<') => (Op::Lt, 1),
        _ if two.starts_with('>') => (Op::Gt, 1),
        _ => return None,
    };
    i = ws(i + len);
    let literal = match *c.get(i)? {
        q @ ('\'' | '"') => {
            let (s, next) = quoted(c, i, q)?;
            i = next;
            Value::from(s)
        }
        _ => {
            let start = i;
            while c.get(i).is_some_and(|ch| !ch.is_whitespace() && *ch != ')') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            match word.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::from(word.parse::<f64>().ok()?),
            }
        }
    };
    i = ws(i);
    (c.get(i) == Some(&')')).then_some((Filter { left, compare: Some((op, literal)) }, i + 1))
}

fn eval<'a>(obj: &'a Value, steps: &[Step]) -> Vec<&'a Value> {
    let mut current = vec![obj];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(name) => next.extend(v.get(name.as_str())),
                Step::Index(i) => {
                    if let Value::Array(a) = v {
                        let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                        next.extend(usize::try_from(idx).ok().and_then(|idx| a.get(idx)));
                    }
                }
                Step::Wildcard => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Descendants => descendants(v, &mut next),
                Step::Filter(f) => {
                    if let Value::Array(a) = v {
                        next.extend(a.iter().filter(|item| filter_matches(f, item)));
                    }
                }
            }
        }
        current = next;
    }
    current
}

fn descendants<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    match v {
        Value::Array(a) => a.iter().for_each(|c| descendants(c, out)),
        Value::Object(m) => m.values().for_each(|c| descendants(c, out)),
        _ => {}
    }
}

fn filter_matches(f: &Filter, item: &Value) -> bool {
    let lefts = eval(item, &f.left);
    let Some(left) = lefts.first() else { return false };
    let Some((op, right)) = &f.compare else { return true };
    let ordering = match (left, right) {
        (Value::Number(a), Value::Number(b)) => {
            a.as_f64().zip(b.as_f64()).and_then(|(a, b)| a.partial_cmp(&b))
        }
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) if matches!(op, Op::Eq | Op::Ne) => Some(a.cmp(b)),
        _ => None,
    };
    match (op, ordering) {
        (Op::Ne, None) => true,
        (_, None) => false,
        (Op::Eq, Some(o)) => o.is_eq(),
        (Op::Ne, Some(o)) => o.is_ne(),
        (Op::Lt, Some(o)) => o.is_lt(),
        (Op::Le, Some(o)) => o.is_le(),
        (Op::Gt, Some(o)) => o.is_gt(),
        (Op::Ge, Some(o)) => o.is_ge(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conditions() -> Value {
        json!({
            "metadata": {"name": "x", "annotations": {"a.b/c": "dotted"}},
            "spec": {"blocks": [{"cidr": "10.0.0.0/24"}, {"start": "10.0.1.1", "stop": "10.0.1.9"}], "n": 3},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "n": 1},
                {"type": "Degraded", "status": "False", "n": 2}
            ]}
        })
    }

    #[test]
    fn jsonpath_fields_indexes_and_wildcards() {
        let o = conditions();
        assert_eq!(jsonpath(&o, ".metadata.name"), [json!("x")]);
        assert_eq!(jsonpath(&o, "{.metadata.name}"), [json!("x")]);
        assert_eq!(jsonpath(&o, "$.spec.n"), [json!(3)]);
        assert_eq!(jsonpath(&o, ".spec.blocks[1].start"), [json!("10.0.1.1")]);
        assert_eq!(jsonpath(&o, ".spec.blocks[-1].stop"), [json!("10.0.1.9")]);
        assert_eq!(jsonpath(&o, ".spec.blocks[*].cidr"), [json!("10.0.0.0/24")]);
        assert_eq!(jsonpath(&o, ".status.conditions[*].type"), [json!("Ready"), json!("Degraded")]);
        assert_eq!(jsonpath(&o, ".metadata.annotations['a.b/c']"), [json!("dotted")]);
        assert_eq!(jsonpath(&o, ".metadata.annotations[\"a.b/c\"]"), [json!("dotted")]);
        assert_eq!(jsonpath(&o, "..stop"), [json!("10.0.1.9")]);
        assert_eq!(jsonpath(&o, ".spec.*").len(), 2);
        assert!(jsonpath(&o, ".spec.missing.deeper").is_empty());
        assert!(jsonpath(&o, ".spec.blocks[7]").is_empty());
        assert!(jsonpath(&o, ".spec[").is_empty());
        assert!(jsonpath(&o, "spec").is_empty());
    }

    #[test]
    fn jsonpath_filters() {
        let o = conditions();
        assert_eq!(jsonpath(&o, r#".status.conditions[?(@.type=="Ready")].status"#), [json!("True")]);
        assert_eq!(jsonpath(&o, ".status.conditions[?(@.type=='Degraded')].status"), [json!("False")]);
        assert_eq!(jsonpath(&o, ".status.conditions[?( @.type != 'Ready' )].type"), [json!("Degraded")]);
        assert_eq!(jsonpath(&o, ".status.conditions[?(@.n > 1)].type"), [json!("Degraded")]);
        assert_eq!(jsonpath(&o, ".status.conditions[?(@.n<=1)].type"), [json!("Ready")]);
        assert_eq!(jsonpath(&o, ".spec.blocks[?(@.cidr)]"), [json!({"cidr": "10.0.0.0/24"})]);
        assert!(jsonpath(&o, ".status.conditions[?(@.type=='Nope')].status").is_empty());
        assert!(jsonpath(&o, ".status.conditions[?(@.type=='Ready'").is_empty());
    }
}
