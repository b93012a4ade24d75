//! Benchmark results: a human table or one JSON object per line.

/// One benchmark run on one system (`owl` or `beam`).
#[derive(Debug, Clone)]
pub struct Report {
    /// The benchmark's name, e.g. `spawn`.
    pub bench: String,
    /// `owl` or `beam`.
    pub system: String,
    /// Named figures, in the order they were added.
    pub fields: Vec<(String, f64)>,
}

impl Report {
    /// An empty report of `bench` on `system`.
    pub fn new(bench: &str, system: &str) -> Self {
        Report {
            bench: bench.into(),
            system: system.into(),
            fields: Vec::new(),
        }
    }

    /// Adds a figure.
    pub fn with(mut self, name: &str, value: f64) -> Self {
        self.fields.push((name.into(), value));
        self
    }

    /// The report as one JSON object: `bench`, `system`, then the figures.
    pub fn to_json(&self) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        obj.insert("bench".into(), self.bench.clone().into());
        obj.insert("system".into(), self.system.clone().into());
        for (k, v) in &self.fields {
            let num = if v.fract() == 0.0 && v.abs() < 9e15 {
                serde_json::Value::from(*v as i64)
            } else {
                serde_json::Number::from_f64((v * 1000.0).round() / 1000.0)
                    .map_or(serde_json::Value::Null, Into::into)
            };
            obj.insert(k.clone(), num);
        }
        obj.into()
    }
}

pub(crate) fn print(reports: &[Report], json: bool) {
    if json {
        for r in reports {
            println!("{}", r.to_json());
        }
        return;
    }
    for r in reports {
        println!("{} on {}", r.bench, r.system);
        for (k, v) in &r.fields {
            if v.fract() == 0.0 {
                println!("  {k:<26} {v:>16.0}");
            } else {
                println!("  {k:<26} {v:>16.3}");
            }
        }
    }
}
