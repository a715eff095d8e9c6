//! Schema.
pub fn render() -> String { String::from("{}\n") }
