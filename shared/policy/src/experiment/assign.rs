//! Deterministic assignment of contacts to experiment arms.
//!
//! Every answer is a function of the experiment id, the contact key, which
//! arms are running and the holdout size, through SHA-256 (FIPS 180-4). There
//! is no stored assignment to lose and no random draw to reproduce:
//!
//! 1. **Holdout.** `bucket = first 8 bytes of SHA-256(experiment ‖ "\n" ‖
//!    contact)`, read big-endian as a `u64`, `mod 10_000`. A bucket below
//!    `holdout_basis_points` puts the contact in the holdout (they get the
//!    standard wording and are counted apart). This ignores which arms run, so
//!    the holdout stays the same people for the whole experiment.
//! 2. **Home arm.** `SHA-256("arm" ‖ "\n" ‖ experiment ‖ "\n" ‖ contact) mod
//!    number of arms`, counting stopped arms too, so the split never changes
//!    while the arm list does not. A running home arm is the answer.
//! 3. **Stopped home arm.** The contact moves to the running arm with the
//!    highest score `SHA-256("reassign" ‖ "\n" ‖ experiment ‖ "\n" ‖ contact ‖
//!    "\n" ‖ arm index)` (rendezvous hashing, Thaler & Ravishankar 1998). Each
//!    running arm is equally likely, and stopping another arm moves only the
//!    contacts that were on it: a contact whose arm still runs never moves.
//! 4. No arm running: [`Assignment::NoArm`] (the caller sends the standard
//!    wording, or nothing).
//!
//! Ids must not contain `"\n"`, the separator (an experiment `"a\nb"` with
//! contact `"c"` would hash like experiment `"a"` with contact `"b\nc"`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The number of holdout buckets: holdout sizes are in basis points.
const BUCKETS: u64 = 10_000;

/// Where a contact falls in an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// In the holdout: the standard wording, measured apart from the arms.
    Holdout,
    /// The arm (an index into the experiment's arm list) the contact gets.
    Arm(usize),
    /// No arm is running.
    NoArm,
}

/// Assigns `contact_key` in `experiment_id`; `arms_running[i]` says whether
/// arm `i` still runs and `holdout_basis_points` (0 to 10,000) sizes the
/// holdout. See the module docs for the rules.
pub fn assign(
    experiment_id: &str,
    contact_key: &str,
    arms_running: &[bool],
    holdout_basis_points: u16,
) -> Assignment {
    if hash(&[experiment_id, contact_key]) % BUCKETS < u64::from(holdout_basis_points) {
        return Assignment::Holdout;
    }
    let Ok(arm_count) = u64::try_from(arms_running.len()) else {
        return Assignment::NoArm;
    };
    if arm_count == 0 {
        return Assignment::NoArm;
    }
    let home = hash(&["arm", experiment_id, contact_key]) % arm_count;
    let home = usize::try_from(home).unwrap_or(usize::MAX);
    if arms_running.get(home).copied().unwrap_or(false) {
        return Assignment::Arm(home);
    }
    reassign(experiment_id, contact_key, arms_running).map_or(Assignment::NoArm, Assignment::Arm)
}

/// The running arm with the highest rendezvous score (the first on a tie).
fn reassign(experiment_id: &str, contact_key: &str, arms_running: &[bool]) -> Option<usize> {
    arms_running
        .iter()
        .enumerate()
        .filter(|(_, running)| **running)
        .map(|(arm, _)| {
            let index = arm.to_string();
            let score = hash(&["reassign", experiment_id, contact_key, &index]);
            (score, std::cmp::Reverse(arm))
        })
        .max()
        .map(|(_, std::cmp::Reverse(arm))| arm)
}

/// The first 8 bytes, big-endian, of SHA-256 over `parts` joined by `"\n"`.
fn hash(parts: &[&str]) -> u64 {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b"\n");
        }
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    digest
        .first_chunk::<8>()
        .map_or(0, |bytes| u64::from_be_bytes(*bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPERIMENT: &str = "reminder-wording-2026";

    fn contacts() -> impl Iterator<Item = String> {
        (0..10_000).map(|i| format!("contact-{i}"))
    }

    #[test]
    fn known_contacts_get_the_assignments_an_independent_implementation_gives() {
        // Python's hashlib with the same rules (/tmp/assign.py at authoring).
        let all = [true, true, true];
        let middle_stopped = [true, false, true];
        let table = [
            ("contact-1", Assignment::Arm(1), Assignment::Arm(0)),
            ("contact-2", Assignment::Holdout, Assignment::Holdout),
            ("contact-3", Assignment::Arm(1), Assignment::Arm(0)),
            ("contact-4", Assignment::Arm(2), Assignment::Arm(2)),
            ("contact-5", Assignment::Arm(0), Assignment::Arm(0)),
        ];
        for (contact, running, stopped) in table {
            assert_eq!(
                assign(EXPERIMENT, contact, &all, 1_000),
                running,
                "{contact}"
            );
            assert_eq!(
                assign(EXPERIMENT, contact, &middle_stopped, 1_000),
                stopped,
                "{contact}"
            );
        }
    }

    #[test]
    fn the_same_inputs_always_give_the_same_answer() {
        for contact in contacts().take(500) {
            let first = assign(EXPERIMENT, &contact, &[true, false, true], 500);
            assert_eq!(
                assign(EXPERIMENT, &contact, &[true, false, true], 500),
                first
            );
        }
    }

    #[test]
    fn the_holdout_is_the_same_people_whichever_arms_run() {
        for contact in contacts().take(2_000) {
            let held = assign(EXPERIMENT, &contact, &[true, true], 1_000) == Assignment::Holdout;
            for running in [[true, false], [false, true], [false, false]] {
                let again = assign(EXPERIMENT, &contact, &running, 1_000) == Assignment::Holdout;
                assert_eq!(again, held, "{contact} {running:?}");
            }
        }
    }

    #[test]
    fn a_contact_whose_arm_still_runs_never_moves_when_another_arm_stops() {
        let steps: [&[bool]; 4] = [
            &[true, true, true, true],
            &[true, true, false, true],
            &[false, true, false, true],
            &[false, true, false, false],
        ];
        for contact in contacts().take(3_000) {
            for pair in steps.windows(2) {
                let [before, after] = pair else {
                    unreachable!()
                };
                if let Assignment::Arm(arm) = assign(EXPERIMENT, &contact, before, 0) {
                    if after[arm] {
                        assert_eq!(assign(EXPERIMENT, &contact, after, 0), Assignment::Arm(arm));
                    }
                }
            }
        }
    }

    #[test]
    fn contacts_of_a_stopped_arm_go_only_to_running_arms_and_spread_evenly() {
        let mut counts = [0_u32; 3];
        for contact in contacts() {
            match assign(EXPERIMENT, &contact, &[true, false, true], 0) {
                Assignment::Arm(arm) => counts[arm] += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(counts[1], 0);
        for share in [counts[0], counts[2]] {
            assert!(
                (f64::from(share) / 10_000.0 - 0.5).abs() < 0.03,
                "{counts:?}"
            );
        }
    }

    #[test]
    fn contacts_split_evenly_across_two_and_three_arms_with_a_ten_percent_holdout() {
        for arms in [2_usize, 3] {
            let running = vec![true; arms];
            let (mut holdout, mut counts) = (0_u32, vec![0_u32; arms]);
            for contact in contacts() {
                match assign(EXPERIMENT, &contact, &running, 1_000) {
                    Assignment::Holdout => holdout += 1,
                    Assignment::Arm(arm) => counts[arm] += 1,
                    Assignment::NoArm => panic!("an arm runs"),
                }
            }
            assert!(
                (f64::from(holdout) / 10_000.0 - 0.10).abs() <= 0.015,
                "{holdout}"
            );
            let assigned = f64::from(10_000 - holdout);
            for count in &counts {
                let share = f64::from(*count) / assigned;
                assert!((share - 1.0 / arms as f64).abs() <= 0.03, "{counts:?}");
            }
        }
    }

    #[test]
    fn holdout_size_zero_holds_no_one_and_ten_thousand_holds_everyone() {
        for contact in contacts().take(1_000) {
            assert_ne!(
                assign(EXPERIMENT, &contact, &[true], 0),
                Assignment::Holdout
            );
            assert_eq!(
                assign(EXPERIMENT, &contact, &[true], 10_000),
                Assignment::Holdout
            );
        }
    }

    #[test]
    fn with_no_arm_running_a_contact_outside_the_holdout_gets_no_arm() {
        for contact in contacts().take(200) {
            assert_eq!(
                assign(EXPERIMENT, &contact, &[false, false], 0),
                Assignment::NoArm
            );
            assert_eq!(assign(EXPERIMENT, &contact, &[], 0), Assignment::NoArm);
        }
    }
}
