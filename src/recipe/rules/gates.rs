//! `gates:`: the policy gates on the finished artifact (size, Flex and custom ops, runtime
//! version), against the recipe's own op opt-ins.

use super::Cx;
use crate::recipe::plan::*;
use crate::recipe::types::*;

impl Cx<'_> {
    pub(super) fn gates(&mut self, r: &Recipe, flex: bool, custom: bool) -> GatesPlan {
        let g = r.gates.clone().unwrap_or_default();
        if g.no_flex == Some(true) && flex {
            let d = self.err(
                "E0281",
                "/gates/no_flex",
                "`gates.no_flex` forbids what `ops.flex` allows",
            );
            d.hints.push("drop one of the two".into());
        }
        if g.no_custom_ops == Some(true) && custom {
            let d = self.err(
                "E0281",
                "/gates/no_custom_ops",
                "`gates.no_custom_ops` forbids what `ops.custom` allows",
            );
            d.hints.push("drop one of the two".into());
        }
        let max_size_bytes = match &g.max_size {
            None => None,
            Some(ByteSize::Bytes(b)) => Some(*b),
            Some(ByteSize::Text(t)) => match crate::units::parse_byte_size(t) {
                Some(b) => Some(b),
                None => {
                    let d = self.err(
                        "E0280",
                        "/gates/max_size",
                        format!("cannot read `{t}` as a size"),
                    );
                    d.hints
                        .push("write e.g. `4 MiB`, `500 kB` or a number of bytes".into());
                    None
                }
            },
        };
        GatesPlan {
            no_flex: g.no_flex.unwrap_or(!flex),
            no_custom_ops: g.no_custom_ops.unwrap_or(!custom),
            max_size_bytes,
            target_runtime: g.target_runtime.clone(),
            verify_quantization: g.verify_quantization.unwrap_or(true),
        }
    }
}
