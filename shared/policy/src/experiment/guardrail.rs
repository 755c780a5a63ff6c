//! The opt-out guardrail: stop an arm whose wording makes people opt out
//! more, as soon as the evidence is strong, without waiting for the end of
//! the experiment.
//!
//! Checking an ordinary significance test after every batch of sends would
//! stop arms that are no worse far more often than its nominal 5%: each look
//! is another chance for noise to cross the line. The **mixture sequential
//! probability ratio test** (mSPRT; Johari, Koomen, Pekelis & Walsh, "Always
//! Valid Inference: Continuous Monitoring of A/B Tests", *Operations
//! Research* 70(3), 2022, arXiv:1512.04922) is built to be looked at as often
//! as one likes. It compares how likely the counts are if the arm's opt-out
//! rate differs from the others' by some amount (averaged over a normal
//! spread of amounts, standard deviation `tau`) with how likely they are if
//! the rates are equal. That ratio `Λ` starts at 1 and, when the rates are
//! equal, reaches `1/alpha` at any look, ever, with probability at most
//! `alpha` (Ville's inequality). So stopping at `Λ ≥ 1/alpha`, checked after
//! every batch, stops an arm that is no worse with probability at most
//! `alpha` (approximately: the variance is estimated from the counts, which
//! the `min_sends` floor keeps from being too rough). The tests simulate it.
//!
//! With the difference `θ̂ = p̂_arm − p̂_control` and its variance
//! `V = p̂_c(1 − p̂_c)/n_c + p̂_a(1 − p̂_a)/n_a`, the normal-mixture ratio is
//! `Λ = √(V / (V + τ²)) · exp(τ² θ̂² / (2 V (V + τ²)))`.
//!
//! `1/Λ` is the *always-valid p-value* of the look; its smallest value so far
//! is the experiment's. Each arm is tested on its own at `alpha`: with `k`
//! arms the chance that some no-worse arm is stopped can reach `(k − 1) ·
//! alpha`, so pass `alpha / (k − 1)` to bound it for the whole experiment.

use serde::{Deserialize, Serialize};

/// The guardrail's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Guardrail {
    /// The largest acceptable chance of stopping an arm that is no worse
    /// (0.05 by default).
    pub alpha: f64,
    /// The standard deviation of the mixture over differences in opt-out
    /// rates: the size of harm the test is most sensitive to (0.01, one
    /// percentage point, by default).
    pub tau: f64,
    /// Sends each side needs before an arm may be stopped (100 by default).
    pub min_sends: u64,
}

impl Default for Guardrail {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            tau: 0.01,
            min_sends: 100,
        }
    }
}

/// One running arm's guardrail result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GuardrailVerdict {
    /// The arm (an index into the experiment's arm list).
    pub arm: usize,
    /// The mixture likelihood ratio `Λ` against the other running arms.
    pub likelihood_ratio: f64,
    /// `min(1, 1/Λ)`, the always-valid p-value of this look.
    pub always_valid_p: f64,
    /// Whether the arm's observed opt-out rate is higher than the others'.
    pub worse: bool,
    /// Whether the arm must stop: worse, `Λ ≥ 1/alpha`, at least `min_sends`
    /// on each side, and not the last running arm.
    pub stop: bool,
}

/// The normal-mixture likelihood ratio `Λ` of H0 "equal opt-out rates" for
/// `arm` against `control`, each `(opt-outs, sends)` (see the module docs).
///
/// A rate of 0 (or 1) would make its variance term 0 and `Λ` unbounded after
/// a handful of sends, so for the variance only it counts as half an event,
/// `0.5/n` (or `1 − 0.5/n`), a continuity correction. With no sends on a side
/// there is no evidence and `Λ` is 1, as it is for a non-finite `tau`.
/// Opt-outs above sends count as sends.
pub fn msprt(control: (u64, u64), arm: (u64, u64), tau: f64) -> f64 {
    let (Some(control_rate), Some(arm_rate)) = (rate(control), rate(arm)) else {
        return 1.0;
    };
    if !tau.is_finite() {
        return 1.0;
    }
    let variance = variance_term(control) + variance_term(arm);
    let spread = tau * tau;
    let theta = arm_rate - control_rate;
    let ln_ratio = 0.5 * (variance / (variance + spread)).ln()
        + spread * theta * theta / (2.0 * variance * (variance + spread));
    ln_ratio.exp()
}

/// Each running arm, given as `(opt-outs, sends)`, against the pooled counts
/// of the other running arms. Arms that are not running (or have no
/// `running` entry) get no verdict. The arm with the lowest rate is never
/// worse than the pool of the others, so at least one arm always runs on.
pub fn guardrail(arms: &[(u64, u64)], running: &[bool], g: &Guardrail) -> Vec<GuardrailVerdict> {
    let active: Vec<(usize, (u64, u64))> = arms
        .iter()
        .zip(running)
        .enumerate()
        .filter(|(_, (_, runs))| **runs)
        .map(|(arm, (&(opt_outs, sends), _))| (arm, (opt_outs.min(sends), sends)))
        .collect();
    let threshold = 1.0 / g.alpha;
    active
        .iter()
        .map(|&(arm, counts)| {
            let control = active
                .iter()
                .filter(|(other, _)| *other != arm)
                .fold((0_u64, 0_u64), |(x, n), (_, (ox, on))| {
                    (x.saturating_add(*ox), n.saturating_add(*on))
                });
            let likelihood_ratio = msprt(control, counts, g.tau);
            let worse = higher_rate(counts, control);
            let enough = counts.1 >= g.min_sends && control.1 >= g.min_sends;
            GuardrailVerdict {
                arm,
                likelihood_ratio,
                always_valid_p: (1.0 / likelihood_ratio).min(1.0),
                worse,
                stop: active.len() > 1 && worse && enough && likelihood_ratio >= threshold,
            }
        })
        .collect()
}

/// The observed rate, or `None` with no sends.
fn rate((events, sends): (u64, u64)) -> Option<f64> {
    (sends > 0).then(|| events.min(sends) as f64 / sends as f64)
}

/// `p(1 − p)/n` with the continuity correction at 0 and 1 (`n > 0`).
fn variance_term((events, sends): (u64, u64)) -> f64 {
    let n = sends as f64;
    let events = events.min(sends);
    let p = if events == 0 {
        0.5 / n
    } else if events == sends {
        1.0 - 0.5 / n
    } else {
        events as f64 / n
    };
    p * (1.0 - p) / n
}

/// `a`'s rate is strictly higher than `b`'s, compared exactly
/// (`x_a · n_b > x_b · n_a`), so ties and empty sides are never "higher".
fn higher_rate((xa, na): (u64, u64), (xb, nb): (u64, u64)) -> bool {
    u128::from(xa) * u128::from(nb) > u128::from(xb) * u128::from(na)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64 (Steele, Lea & Flood 2014): a small deterministic generator
    /// so the simulations give the same result on every run.
    struct SplitMix(u64);

    impl SplitMix {
        fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1_u64 << 53) as f64
        }

        fn opt_outs(&mut self, sends: u64, rate: f64) -> u64 {
            (0..sends).filter(|_| self.uniform() < rate).count() as u64
        }
    }

    /// Two arms with these opt-out rates, 100 sends each per batch up to
    /// 4,000, the guardrail checked after every batch: the arm stopped, if any.
    fn simulate(rng: &mut SplitMix, rates: [f64; 2]) -> Option<usize> {
        let g = Guardrail::default();
        let mut arms = [(0_u64, 0_u64); 2];
        while arms[0].1 < 4_000 {
            for (counts, rate) in arms.iter_mut().zip(rates) {
                counts.0 += rng.opt_outs(100, rate);
                counts.1 += 100;
            }
            if let Some(v) = guardrail(&arms, &[true, true], &g).iter().find(|v| v.stop) {
                return Some(v.arm);
            }
        }
        None
    }

    #[test]
    fn the_likelihood_ratio_matches_an_independent_computation() {
        // The formula in Python's math module (/tmp/msprt.py at authoring).
        let table = [
            ((10, 1_000), (30, 1_000), 0.01, 21.197_856_410_241_97),
            ((10, 1_000), (10, 1_000), 0.01, 0.406_540_845_547_526_1),
            ((0, 200), (6, 200), 0.01, 2.360_909_062_938_619),
            ((40, 4_000), (120, 4_000), 0.01, 39_037_300.376_777_02),
            ((25, 3_000), (9, 1_000), 0.02, 0.171_537_603_969_751_18),
        ];
        for (control, arm, tau, expected) in table {
            let actual = msprt(control, arm, tau);
            assert!(
                (actual / expected - 1.0).abs() < 1e-12,
                "{control:?} {arm:?}: {actual}"
            );
        }
    }

    #[test]
    fn no_sends_or_no_spread_is_no_evidence() {
        assert_eq!(msprt((0, 0), (5, 100), 0.01), 1.0);
        assert_eq!(msprt((5, 100), (0, 0), 0.01), 1.0);
        assert_eq!(msprt((1, 100), (9, 100), 0.0), 1.0);
        assert_eq!(msprt((1, 100), (9, 100), f64::NAN), 1.0);
    }

    #[test]
    fn the_ratio_depends_on_the_size_of_the_difference_not_its_direction() {
        let up = msprt((10, 1_000), (30, 1_000), 0.01);
        let down = msprt((30, 1_000), (10, 1_000), 0.01);
        assert!((up - down).abs() < 1e-9 * up);
    }

    #[test]
    fn a_clearly_worse_arm_stops_and_the_others_do_not() {
        let arms = [(10, 1_000), (60, 1_000), (12, 1_000)];
        let verdicts = guardrail(&arms, &[true, true, true], &Guardrail::default());
        let stops: Vec<(usize, bool, bool)> =
            verdicts.iter().map(|v| (v.arm, v.worse, v.stop)).collect();
        assert_eq!(
            stops,
            [(0, false, false), (1, true, true), (2, false, false)]
        );
        assert!(verdicts[1].always_valid_p < 0.05 && verdicts[0].always_valid_p <= 1.0);
    }

    #[test]
    fn stopped_arms_get_no_verdict_and_do_not_count_as_control() {
        let arms = [(10, 1_000), (60, 1_000), (12, 1_000)];
        let verdicts = guardrail(&arms, &[true, false, true], &Guardrail::default());
        assert_eq!(verdicts.iter().map(|v| v.arm).collect::<Vec<_>>(), [0, 2]);
        assert!(verdicts.iter().all(|v| !v.stop));
    }

    #[test]
    fn the_last_running_arm_is_never_stopped() {
        let verdicts = guardrail(
            &[(10, 1_000), (600, 1_000)],
            &[false, true],
            &Guardrail::default(),
        );
        assert_eq!(verdicts.len(), 1);
        assert!(!verdicts[0].stop);
    }

    #[test]
    fn no_arm_stops_before_both_sides_have_the_minimum_sends() {
        // A wide mixture (tau 0.2) so the evidence alone would stop it.
        let g = Guardrail {
            tau: 0.2,
            min_sends: 100,
            ..Guardrail::default()
        };
        let early = guardrail(&[(0, 99), (40, 99)], &[true, true], &g);
        assert!(
            early[1].likelihood_ratio >= 20.0 && !early[1].stop,
            "{early:?}"
        );
        let later = guardrail(&[(0, 100), (40, 100)], &[true, true], &g);
        assert!(later[1].stop, "{later:?}");
    }

    #[test]
    fn checked_after_every_batch_equal_arms_are_rarely_stopped() {
        // 200 A/A experiments at a 1% opt-out rate, 40 looks each: the share
        // ever stopped stays near alpha (0.05); Python's numpy gave 1.2%.
        let mut rng = SplitMix(20_260_101);
        let stopped = (0..200)
            .filter(|_| simulate(&mut rng, [0.01, 0.01]).is_some())
            .count();
        assert!(stopped as f64 / 200.0 <= 0.08, "{stopped} of 200 stopped");
    }

    #[test]
    fn an_arm_tripling_opt_outs_is_stopped_before_four_thousand_sends() {
        // 100 A/B experiments, 1% against 3%.
        let mut rng = SplitMix(7);
        let outcomes: Vec<Option<usize>> =
            (0..100).map(|_| simulate(&mut rng, [0.01, 0.03])).collect();
        let b_stopped = outcomes.iter().filter(|o| **o == Some(1)).count();
        assert!(b_stopped >= 95, "{b_stopped} of 100");
        assert!(!outcomes.contains(&Some(0)));
    }
}
