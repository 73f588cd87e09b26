//! The Prometheus text exposition format (version 0.0.4): a writer that keeps each family's
//! `# HELP` and `# TYPE` lines together with its samples, and a strict reader used by the
//! tests to prove that what `/metrics` serves parses.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// The content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Metric types of the classic text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Writes one exposition. Families must be written whole, one after another (the format
/// requires a family's samples to be contiguous).
#[derive(Default)]
pub struct Writer {
    out: String,
}

impl Writer {
    /// Starts a family.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
        self
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        // Integral counters print without a decimal point, as other exporters do.
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One parsed sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition: samples, and each family's type.
#[derive(Debug, Default)]
pub struct Parsed {
    pub samples: Vec<Sample>,
    pub types: HashMap<String, String>,
}

impl Parsed {
    /// The sum of all samples of `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Whether any sample of `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

/// Parses and checks an exposition: every line is a comment, blank, or `name{labels} value`;
/// every sample belongs to a family declared by a `# TYPE` line before it, with at most one
/// `# HELP` and one `# TYPE` per family; a family's samples are contiguous; counters are not
/// negative; histograms have `_bucket` (with `le`, non-decreasing, ending at `+Inf`), `_sum`
/// and `_count` equal to the `+Inf` bucket.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut helps: HashMap<String, ()> = HashMap::new();
    let mut finished: HashMap<String, ()> = HashMap::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let at = |m: &str| format!("line {}: {m}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (word, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            match word {
                "HELP" => {
                    check_name(name).map_err(|e| at(&e))?;
                    if helps.insert(name.to_owned(), ()).is_some() {
                        return Err(at("second HELP for the family"));
                    }
                }
                "TYPE" => {
                    check_name(name).map_err(|e| at(&e))?;
                    let kind = parts.next().unwrap_or("");
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at("unknown type"));
                    }
                    if parsed.types.contains_key(name) {
                        return Err(at("second TYPE for the family"));
                    }
                    if let Some(prev) = current.replace(name.to_owned()) {
                        finished.insert(prev, ());
                    }
                    parsed.types.insert(name.to_owned(), kind.to_owned());
                }
                _ => {}
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let sample = parse_sample(line).map_err(|e| at(&e))?;
        let family = family_of(&sample.name, &parsed.types)
            .ok_or_else(|| at("sample without a TYPE line before it"))?;
        if current.as_deref() != Some(family.as_str()) || finished.contains_key(&family) {
            return Err(at("family's samples are not contiguous"));
        }
        if parsed.types.get(&family).map(String::as_str) == Some("counter") && sample.value < 0.0 {
            return Err(at("negative counter"));
        }
        parsed.samples.push(sample);
    }
    check_histograms(&parsed)?;
    Ok(parsed)
}

fn family_of(sample: &str, types: &HashMap<String, String>) -> Option<String> {
    if types.contains_key(sample) {
        return Some(sample.to_owned());
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix)
            && types
                .get(base)
                .is_some_and(|t| t == "histogram" || t == "summary")
        {
            return Some(base.to_owned());
        }
    }
    None
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or_else(|| "no value".to_owned())?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(body)?;
        labels = parsed;
        rest = after;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or_else(|| "no value".to_owned())?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse::<f64>()
            .map_err(|e| format!("bad value {v:?}: {e}"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|e| format!("bad timestamp {ts:?}: {e}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing text".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `k="v",...}` and returns the labels and the text after the closing brace.
fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    // Bounded by the line's length: every round consumes at least one character.
    loop {
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let key = &s[..eq];
        check_name(key)?;
        if key.contains(':') {
            return Err(format!("bad label name {key:?}"));
        }
        s = s[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    _ => return Err("bad escape in label value".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        s = &s[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

/// One histogram series: its (le, count) buckets, `_sum` and `_count`.
type HistogramSeries = (Vec<(f64, f64)>, Option<f64>, Option<f64>);

fn check_histograms(parsed: &Parsed) -> Result<(), String> {
    for (family, kind) in &parsed.types {
        if kind != "histogram" {
            continue;
        }
        // Series are told apart by their labels other than `le`.
        let mut series: BTreeMap<String, HistogramSeries> = BTreeMap::new();
        for s in &parsed.samples {
            let mut key_labels = s.labels.clone();
            let le = key_labels.remove("le");
            let key = format!("{key_labels:?}");
            let entry = series.entry(key).or_default();
            if s.name == format!("{family}_bucket") {
                let le = le.ok_or_else(|| format!("{family}_bucket without le"))?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse::<f64>()
                        .map_err(|e| format!("{family}: bad le {le:?}: {e}"))?
                };
                entry.0.push((bound, s.value));
            } else if s.name == format!("{family}_sum") {
                entry.1 = Some(s.value);
            } else if s.name == format!("{family}_count") {
                entry.2 = Some(s.value);
            }
        }
        for (key, (buckets, sum, count)) in series.iter().filter(|(_, v)| !v.0.is_empty()) {
            let what = format!("{family}{key}");
            if !buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
            {
                return Err(format!("{what}: buckets not increasing"));
            }
            let last = buckets.last().ok_or("no buckets")?;
            if last.0 != f64::INFINITY {
                return Err(format!("{what}: no +Inf bucket"));
            }
            if sum.is_none() || *count != Some(last.1) {
                return Err(format!("{what}: _sum missing or _count != +Inf bucket"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_text_parses_back() {
        let mut w = Writer::default();
        w.single("up", Kind::Gauge, "Whether it runs.\nYes.", 1.0);
        w.family("req_total", Kind::Counter, "Requests.")
            .sample(
                "req_total",
                &[("route", "/r/{room}"), ("q", "a\"b\\c")],
                3.0,
            )
            .sample("req_total", &[("route", "/ws")], 0.5);
        w.family("lat_seconds", Kind::Histogram, "Latency.")
            .sample("lat_seconds_bucket", &[("le", "0.1")], 1.0)
            .sample("lat_seconds_bucket", &[("le", "+Inf")], 2.0)
            .sample("lat_seconds_sum", &[], 0.35)
            .sample("lat_seconds_count", &[], 2.0);
        let text = w.finish();
        let p = parse(&text).expect("parses");
        assert_eq!(p.samples.len(), 7);
        assert_eq!(p.sum("req_total", &[]), 3.5);
        assert_eq!(p.sum("req_total", &[("q", "a\"b\\c")]), 3.0);
        assert_eq!(p.types["lat_seconds"], "histogram");
    }

    #[test]
    fn broken_expositions_are_refused() {
        let bad = [
            "x 1\n",                                                             // no TYPE
            "# TYPE x gauge\nx{a=\"1\" 2\n", // unterminated labels
            "# TYPE x gauge\nx one\n",       // bad value
            "# TYPE x counter\nx -1\n",      // negative counter
            "# TYPE x gauge\n# TYPE x gauge\nx 1\n", // two TYPEs
            "# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx 2\n", // not contiguous
            "# TYPE 1x gauge\n1x 1\n",       // bad name
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n", // no +Inf
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", // count
        ];
        for text in bad {
            assert!(parse(text).is_err(), "accepted {text:?}");
        }
    }
}
