//! Which gauntlet members run where: every run takes the members on the
//! CI subset of presets ([`PresetTier::Ci`]); the members on the other
//! presets run when `KTSTR_GAUNTLET=full` and are reported ignored by name
//! otherwise, under CI too (CI runs the subset on purpose).
//!
//! The full gauntlet in one command: `KTSTR_GAUNTLET=full cargo test
//! --test schedulers gauntlet`; across machines, `cargo nextest run
//! --partition hash:K/N` (see `.ci/gauntlet-partition`).

use ktstr_testenv::Need;
use ktstr_topology::PresetTier;

use super::KtstrTest;

/// Whether `t` is a gauntlet member (its name is `gauntlet/<test>/...`).
pub fn is_member(t: &KtstrTest) -> bool {
    t.name.starts_with("gauntlet/")
}

/// The opt-in a gauntlet member on a full-tier preset needs; `None` for
/// every other test (shapes outside the catalogue were picked by hand).
pub fn tier_need(t: &KtstrTest) -> Option<Need> {
    let preset = ktstr_topology::preset(t.topology)?;
    (is_member(t) && preset.tier == PresetTier::Full).then_some(ktstr_testenv::FULL_GAUNTLET)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Scenario;

    fn test(name: &'static str, topology: &'static str) -> KtstrTest {
        fn scenario() -> Scenario {
            ktstr_workload::catalogue::steady()
        }
        KtstrTest::new(name, topology, scenario)
    }

    #[test]
    fn only_gauntlet_members_on_full_tier_presets_wait_for_the_full_run() {
        assert!(tier_need(&test("gauntlet/steady/1n1l2c1t", "1n1l2c1t")).is_none());
        let need = tier_need(&test("gauntlet/steady/4n8l4c2t", "4n8l4c2t"));
        assert!(
            matches!(
                need,
                Some(Need::LargerRun {
                    var: "KTSTR_GAUNTLET",
                    ..
                })
            ),
            "{need:?}"
        );
        // Chosen by hand, outside a gauntlet: it runs.
        assert!(tier_need(&test("big_one", "4n8l4c2t")).is_none());
        assert!(tier_need(&test("gauntlet/steady/3n3l1c1t", "3n3l1c1t")).is_none());
    }
}
