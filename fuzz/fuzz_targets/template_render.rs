//! Fuzz template rendering: any template string must render to a value or give an error,
//! never panic, hang or run out of memory (rendering is bounded by fuel and by the size of
//! what it makes). The first line of the input is the template; the rest, when it is
//! JSON, gives the variables (`vars:`).

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use litert::recipe::template::{MAX_RENDERED_BYTES, render_template};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (template, vars) = text.split_once('\n').unwrap_or((text, ""));
    let mut vars: BTreeMap<String, Value> = serde_json::from_str(vars).unwrap_or_default();
    vars.entry("seq".into()).or_insert(Value::from(128));
    vars.entry("dir".into()).or_insert(Value::from("models"));
    vars.entry("list".into()).or_insert(serde_json::json!([1, 2, 3]));
    if let Ok(Value::String(s)) = render_template(template, &vars) {
        assert!(s.len() <= MAX_RENDERED_BYTES);
    }
});
