//! The worker protocol, version 1: JSON lines. Requests carry a fully resolved
//! [`BuildPlan`] as data; events report progress, results and structured errors. The
//! Python side lives in `python/worker.py`; both sides change together.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::recipe::BuildPlan;

/// The protocol version this binary speaks; the worker says its own in `hello`.
pub const PROTOCOL: u32 = 1;

/// What `litert` asks of the worker.
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request<'a> {
    Build {
        id: &'a str,
        plan: &'a BuildPlan,
        /// Where the worker writes the artifact; `litert` renames it into place.
        temp_output: &'a str,
        allow_code: bool,
        allow_unsafe: bool,
    },
    Shutdown,
}

/// What the worker reports.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Hello {
        protocol: u32,
        python: String,
        pid: u32,
    },
    Progress {
        id: String,
        stage: String,
        #[serde(default)]
        message: String,
    },
    Result(Box<BuildResult>),
    Error(Box<WorkerError>),
    Bye,
}

/// A finished build.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BuildResult {
    pub id: String,
    /// The input signature the artifact was exported with.
    pub signature: Vec<SignatureInput>,
    pub parity: Option<ParityReport>,
    /// Seconds per stage.
    pub timings: BTreeMap<String, f64>,
    /// Package versions of the worker (`python`, `tensorflow`, `keras`, ...).
    pub versions: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SignatureInput {
    pub name: String,
    pub shape: Vec<Option<i64>>,
    pub dtype: String,
}

/// Keras against LiteRT on the same inputs.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ParityReport {
    pub samples: u32,
    /// `random` (seeded) or `calibration`.
    pub source: String,
    pub names_ok: bool,
    pub shapes_ok: bool,
    pub outputs: Vec<OutputParity>,
    pub ok: bool,
    /// Why no comparison could run (e.g. Flex ops the interpreter cannot execute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OutputParity {
    pub name: String,
    pub shape: Option<Vec<i64>>,
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
    pub atol: Option<f64>,
    pub rtol: Option<f64>,
    pub violations: u64,
    pub shape_mismatch: Option<Vec<Vec<i64>>>,
    pub ok: bool,
}

/// A failed build, as the worker saw it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WorkerError {
    pub id: Option<String>,
    /// The stage that failed: `import`, `load`, `signature`, `calibrate`, `convert`, `parity`.
    pub stage: String,
    /// `unsupported_ops`, `network`, `code_not_allowed`, `unsafe_model`, `signature`,
    /// `calibration`, `out_of_memory`, or a Python exception class name.
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub traceback: String,
    /// For `unsupported_ops`: the ops the converter could not express.
    #[serde(default)]
    pub ops: Vec<String>,
    /// For `signature` errors: the model's own input names.
    #[serde(default)]
    pub model_inputs: Vec<String>,
    #[serde(default)]
    pub file: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse() {
        let e: Event =
            serde_json::from_str(r#"{"event":"hello","protocol":1,"python":"3.11.7","pid":4}"#)
                .unwrap();
        assert!(matches!(e, Event::Hello { protocol: 1, .. }));
        let e: Event = serde_json::from_str(
            r#"{"event":"error","id":"a","stage":"convert","kind":"unsupported_ops","message":"m","ops":["tf.X"]}"#,
        )
        .unwrap();
        let Event::Error(err) = e else {
            panic!("not an error")
        };
        assert_eq!(err.ops, vec!["tf.X".to_string()]);
    }
}
