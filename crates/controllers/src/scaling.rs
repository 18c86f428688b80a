//! The autoscaler's replica arithmetic, as Kubernetes' HPA controller does it: from the
//! replicas the metrics ask for to the replicas it sets, and why (the `AbleToScale` and
//! `ScalingLimited` reasons). Pure: the caller passes the clock, so tests drive time.
//!
//! - Without `spec.behavior`: the highest recommendation of the scale-down stabilization
//!   window, then at most max(2 × current, 4) replicas and within min/max
//!   (`ScaleUpLimit`, `TooManyReplicas`, `TooFewReplicas`, `DesiredWithinRange`).
//! - With `spec.behavior` (unset parts take Kubernetes' defaults: scale-up 0 s window,
//!   4 pods or 100 % per 15 s, `Max`; scale-down the controller's window, 100 % per 15 s,
//!   `Max`): the lowest (up) or highest (down) recommendation of that direction's window,
//!   then the rate its `policies` allow over the scale events of each policy's period,
//!   picked by `selectPolicy` (`Max` the largest change, `Min` the smallest, `Disabled`
//!   none), then max (up) or min (down) (`ScaleUpLimit`, `ScaleDownLimit`, ...).
//! - Recommendations start with the current replicas when an autoscaler is first seen, so
//!   a restarted controller does not scale down before a window has passed.

use std::time::{Duration, Instant};

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};

use crate::error::{Error, Result};

/// How a direction's policies combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the largest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// What a policy limits: a number of pods or a percentage of the replicas at the start of
/// its period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amount {
    Pods(i32),
    Percent(i32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub amount: Amount,
    pub period: Duration,
}

/// One direction's rules with every default filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub window: Duration,
    pub select: Select,
    pub policies: Vec<Policy>,
}

/// Both directions' rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behavior {
    pub up: Rules,
    pub down: Rules,
}

fn default_up() -> Rules {
    let period = Duration::from_secs(15);
    Rules {
        window: Duration::ZERO,
        select: Select::Max,
        policies: vec![
            Policy {
                amount: Amount::Pods(4),
                period,
            },
            Policy {
                amount: Amount::Percent(100),
                period,
            },
        ],
    }
}

fn default_down(window: Duration) -> Rules {
    Rules {
        window,
        select: Select::Max,
        policies: vec![Policy {
            amount: Amount::Percent(100),
            period: Duration::from_secs(15),
        }],
    }
}

fn rules(who: &str, path: &str, spec: Option<&HPAScalingRules>, mut rules: Rules) -> Result<Rules> {
    let Some(spec) = spec else {
        return Ok(rules);
    };
    if let Some(w) = spec.stabilization_window_seconds {
        if w < 0 {
            return Err(Error::invalid(
                who,
                format!("{path}.stabilizationWindowSeconds"),
                format!("{w} is negative"),
            ));
        }
        rules.window = Duration::from_secs(w as u64);
    }
    if let Some(s) = spec.select_policy.as_deref() {
        rules.select = match s {
            "Max" => Select::Max,
            "Min" => Select::Min,
            "Disabled" => Select::Disabled,
            other => {
                return Err(Error::invalid(
                    who,
                    format!("{path}.selectPolicy"),
                    format!("{other:?} is not one of Max, Min, Disabled"),
                ));
            }
        };
    }
    // Given policies replace the defaults, even an empty list (as in Kubernetes).
    if let Some(policies) = &spec.policies {
        rules.policies = Vec::with_capacity(policies.len());
        for (i, p) in policies.iter().enumerate() {
            let at = format!("{path}.policies[{i}]");
            if p.value <= 0 {
                return Err(Error::invalid(
                    who,
                    format!("{at}.value"),
                    format!("{} must be greater than zero", p.value),
                ));
            }
            if p.period_seconds <= 0 {
                return Err(Error::invalid(
                    who,
                    format!("{at}.periodSeconds"),
                    format!("{} must be greater than zero", p.period_seconds),
                ));
            }
            let amount = match p.type_.as_str() {
                "Pods" => Amount::Pods(p.value),
                "Percent" => Amount::Percent(p.value),
                other => {
                    return Err(Error::invalid(
                        who,
                        format!("{at}.type"),
                        format!("{other:?} is not one of Pods, Percent"),
                    ));
                }
            };
            rules.policies.push(Policy {
                amount,
                period: Duration::from_secs(p.period_seconds as u64),
            });
        }
    }
    Ok(rules)
}

impl Behavior {
    /// `spec.behavior` with Kubernetes' defaults for what it leaves out; a scale-down
    /// without a window gets `down_window` (the controller's setting). Errors name the field.
    pub fn from_spec(
        who: &str,
        spec: &HorizontalPodAutoscalerBehavior,
        down_window: Duration,
    ) -> Result<Behavior> {
        Ok(Behavior {
            up: rules(
                who,
                "spec.behavior.scaleUp",
                spec.scale_up.as_ref(),
                default_up(),
            )?,
            down: rules(
                who,
                "spec.behavior.scaleDown",
                spec.scale_down.as_ref(),
                default_down(down_window),
            )?,
        })
    }

    fn longest_period(rules: &Rules) -> Duration {
        rules
            .policies
            .iter()
            .map(|p| p.period)
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// A condition's status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    pub status: bool,
    pub reason: &'static str,
    pub message: &'static str,
}

/// The replicas to set and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub desired: i32,
    /// `AbleToScale` when no rescale happens (`ReadyForNewScale` or `Scale*Stabilized`).
    pub able: Reason,
    /// `ScalingLimited`.
    pub limited: Reason,
}

/// The autoscaler's replica bounds and its scale-down window (for autoscalers without
/// `behavior`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub min: i32,
    pub max: i32,
    pub down_window: Duration,
}

/// What one autoscaler remembers between syncs: recent recommendations and scale events.
#[derive(Debug, Default)]
pub struct ScaleHistory {
    recommendations: Vec<(Instant, i32)>,
    /// Replicas added, per rescale.
    ups: Vec<(Instant, i32)>,
    /// Replicas removed, per rescale.
    downs: Vec<(Instant, i32)>,
}

fn within(t: Instant, now: Instant, window: Duration) -> bool {
    now.saturating_duration_since(t) < window
}

/// The replicas changed in the last `period`.
fn changed_in(events: &[(Instant, i32)], now: Instant, period: Duration) -> i32 {
    events
        .iter()
        .filter(|(t, _)| within(*t, now, period))
        .map(|(_, n)| n)
        .sum()
}

/// The most replicas the scale-up rules allow now (Kubernetes'
/// calculateScaleUpLimitWithScalingRules).
pub fn scale_up_limit(current: i32, events: &[(Instant, i32)], rules: &Rules, now: Instant) -> i32 {
    if rules.select == Select::Disabled {
        return current;
    }
    let mut result: Option<i32> = None;
    for p in &rules.policies {
        let start = current - changed_in(events, now, p.period);
        let proposed = match p.amount {
            Amount::Pods(n) => start.saturating_add(n),
            Amount::Percent(pct) => (start as f64 * (1.0 + pct as f64 / 100.0))
                .ceil()
                .min(i32::MAX as f64) as i32,
        };
        result = Some(match (result, rules.select) {
            (None, _) => proposed,
            (Some(r), Select::Min) => r.min(proposed),
            (Some(r), _) => r.max(proposed),
        });
    }
    result.unwrap_or(0)
}

/// The fewest replicas the scale-down rules allow now (Kubernetes'
/// calculateScaleDownLimitWithBehaviors).
pub fn scale_down_limit(
    current: i32,
    events: &[(Instant, i32)],
    rules: &Rules,
    now: Instant,
) -> i32 {
    if rules.select == Select::Disabled {
        return current;
    }
    let mut result: Option<i32> = None;
    for p in &rules.policies {
        let start = current + changed_in(events, now, p.period);
        let proposed = match p.amount {
            Amount::Pods(n) => start - n,
            Amount::Percent(pct) => (start as f64 * (1.0 - pct as f64 / 100.0)) as i32,
        };
        result = Some(match (result, rules.select) {
            (None, _) => proposed,
            (Some(r), Select::Min) => r.max(proposed),
            (Some(r), _) => r.min(proposed),
        });
    }
    result.unwrap_or(i32::MAX)
}

const WITHIN_RANGE: Reason = Reason {
    status: false,
    reason: "DesiredWithinRange",
    message: "the desired count is within the acceptable range",
};
/// `AbleToScale` when nothing held the recommendation back.
pub const READY: Reason = Reason {
    status: true,
    reason: "ReadyForNewScale",
    message: "recommended size matches current size",
};
const UP_STABILIZED: Reason = Reason {
    status: true,
    reason: "ScaleUpStabilized",
    message: "recent recommendations were lower than current one, applying the lowest recent recommendation",
};
const DOWN_STABILIZED: Reason = Reason {
    status: true,
    reason: "ScaleDownStabilized",
    message: "recent recommendations were higher than current one, applying the highest recent recommendation",
};
const SCALE_UP_LIMIT: Reason = Reason {
    status: true,
    reason: "ScaleUpLimit",
    message: "the desired replica count is increasing faster than the maximum scale rate",
};
const SCALE_DOWN_LIMIT: Reason = Reason {
    status: true,
    reason: "ScaleDownLimit",
    message: "the desired replica count is decreasing faster than the maximum scale rate",
};
const TOO_MANY: Reason = Reason {
    status: true,
    reason: "TooManyReplicas",
    message: "the desired replica count is more than the maximum replica count",
};
const TOO_FEW: Reason = Reason {
    status: true,
    reason: "TooFewReplicas",
    message: "the desired replica count is less than the minimum replica count",
};

impl ScaleHistory {
    /// A history that starts with the current replicas as its first recommendation.
    pub fn new(now: Instant, current: i32) -> ScaleHistory {
        ScaleHistory {
            recommendations: vec![(now, current)],
            ..Default::default()
        }
    }

    /// Records `recommended` and decides the replicas to set.
    pub fn decide(
        &mut self,
        now: Instant,
        behavior: Option<&Behavior>,
        limits: &Limits,
        current: i32,
        recommended: i32,
    ) -> Decision {
        let Limits {
            min,
            max,
            down_window,
        } = *limits;
        match behavior {
            None => self.decide_plain(now, down_window, current, recommended, min, max),
            Some(b) => self.decide_with(now, b, current, recommended, min, max),
        }
    }

    /// Records a rescale from `from` to `to`, for the rate policies.
    pub fn record_scale(&mut self, now: Instant, behavior: Option<&Behavior>, from: i32, to: i32) {
        let Some(b) = behavior else {
            return;
        };
        let (events, rules, change) = if to > from {
            (&mut self.ups, &b.up, to - from)
        } else {
            (&mut self.downs, &b.down, from - to)
        };
        let keep = Behavior::longest_period(rules);
        events.retain(|(t, _)| within(*t, now, keep));
        events.push((now, change));
    }

    fn remember(&mut self, now: Instant, keep: Duration, recommended: i32) {
        self.recommendations
            .retain(|(t, _)| now.saturating_duration_since(*t) <= keep);
        self.recommendations.push((now, recommended));
    }

    /// Kubernetes' normalizeDesiredReplicas.
    fn decide_plain(
        &mut self,
        now: Instant,
        window: Duration,
        current: i32,
        recommended: i32,
        min: i32,
        max: i32,
    ) -> Decision {
        let stabilized = self
            .recommendations
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) <= window)
            .map(|(_, r)| *r)
            .fold(recommended, i32::max);
        self.remember(now, window, recommended);
        let able = if stabilized != recommended {
            DOWN_STABILIZED
        } else {
            READY
        };
        let up_limit = current.saturating_mul(2).max(4);
        let (ceiling, ceiling_reason) = if max > up_limit {
            (up_limit, SCALE_UP_LIMIT)
        } else {
            (max, TOO_MANY)
        };
        let (desired, limited) = if stabilized < min {
            (min, TOO_FEW)
        } else if stabilized > ceiling {
            (ceiling, ceiling_reason)
        } else {
            (stabilized, WITHIN_RANGE)
        };
        Decision {
            desired,
            able,
            limited,
        }
    }

    /// Kubernetes' normalizeDesiredReplicasWithBehaviors.
    fn decide_with(
        &mut self,
        now: Instant,
        b: &Behavior,
        current: i32,
        recommended: i32,
        min: i32,
        max: i32,
    ) -> Decision {
        let up = recommended >= current;
        let window = if up { b.up.window } else { b.down.window };
        let stabilized = self
            .recommendations
            .iter()
            .filter(|(t, _)| within(*t, now, window))
            .map(|(_, r)| *r)
            .fold(recommended, |a, r| if up { a.min(r) } else { a.max(r) });
        self.remember(now, b.up.window.max(b.down.window), recommended);
        let able = match (stabilized == recommended, up) {
            (true, _) => READY,
            (false, true) => UP_STABILIZED,
            (false, false) => DOWN_STABILIZED,
        };
        let (desired, limited) = if stabilized > current {
            let limit = scale_up_limit(current, &self.ups, &b.up, now).max(current);
            let (ceiling, reason) = if max > limit {
                (limit, SCALE_UP_LIMIT)
            } else {
                (max, TOO_MANY)
            };
            if stabilized > ceiling {
                (ceiling, reason)
            } else {
                (stabilized, WITHIN_RANGE)
            }
        } else if stabilized < current {
            let limit = scale_down_limit(current, &self.downs, &b.down, now).min(current);
            let (floor, reason) = if min < limit {
                (limit, SCALE_DOWN_LIMIT)
            } else {
                (min, TOO_FEW)
            };
            if stabilized < floor {
                (floor, reason)
            } else {
                (stabilized, WITHIN_RANGE)
            }
        } else {
            (stabilized, WITHIN_RANGE)
        };
        Decision {
            desired,
            able,
            limited,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn behavior(spec: serde_json::Value) -> Behavior {
        let spec: HorizontalPodAutoscalerBehavior = serde_json::from_value(spec).unwrap();
        Behavior::from_spec("hpa ns/web", &spec, Duration::from_secs(300)).unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn lim(min: i32, max: i32, down_window: Duration) -> Limits {
        Limits {
            min,
            max,
            down_window,
        }
    }

    #[test]
    fn defaults_fill_what_behavior_leaves_out() {
        let b = behavior(json!({}));
        assert_eq!(b.up, default_up());
        assert_eq!(b.down, default_down(secs(300)));
        let b = behavior(
            json!({"scaleUp": {"selectPolicy": "Min"}, "scaleDown": {"stabilizationWindowSeconds": 60, "policies": []}}),
        );
        assert_eq!(b.up.select, Select::Min);
        assert_eq!(b.up.policies, default_up().policies);
        assert_eq!(b.down.window, secs(60));
        assert!(b.down.policies.is_empty());
    }

    #[test]
    fn bad_behavior_is_a_clear_error() {
        let bad = |v: serde_json::Value| {
            let spec: HorizontalPodAutoscalerBehavior = serde_json::from_value(v).unwrap();
            Behavior::from_spec("hpa ns/web", &spec, secs(300))
                .unwrap_err()
                .to_string()
        };
        let e = bad(
            json!({"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}, {"type": "Nodes", "value": 1, "periodSeconds": 15}]}}),
        );
        assert!(e.contains("spec.behavior.scaleUp.policies[1].type"), "{e}");
        let e = bad(json!({"scaleDown": {"selectPolicy": "Avg"}}));
        assert!(e.contains("spec.behavior.scaleDown.selectPolicy"), "{e}");
        let e = bad(
            json!({"scaleDown": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}}),
        );
        assert!(e.contains("value"), "{e}");
        let e = bad(json!({"scaleUp": {"stabilizationWindowSeconds": -1}}));
        assert!(e.contains("stabilizationWindowSeconds"), "{e}");
    }

    #[test]
    fn scale_up_limits_follow_kubernetes_arithmetic() {
        let t0 = Instant::now();
        let up = default_up();
        // 4 pods or 100 %, the larger: from 3 → 7, from 10 → 20, from 1 → 5.
        assert_eq!(scale_up_limit(3, &[], &up, t0), 7);
        assert_eq!(scale_up_limit(10, &[], &up, t0), 20);
        assert_eq!(scale_up_limit(1, &[], &up, t0), 5);
        let min = Rules {
            select: Select::Min,
            ..up.clone()
        };
        assert_eq!(scale_up_limit(10, &[], &min, t0), 14);
        // Percent rounds up: 3 × 1.1 = 3.3 → 4.
        let pct = Rules {
            window: Duration::ZERO,
            select: Select::Max,
            policies: vec![Policy {
                amount: Amount::Percent(10),
                period: secs(60),
            }],
        };
        assert_eq!(scale_up_limit(3, &[], &pct, t0), 4);
        // Events within a period count from the replicas at the period's start.
        let pods = Rules {
            policies: vec![Policy {
                amount: Amount::Pods(2),
                period: secs(60),
            }],
            ..pct.clone()
        };
        let events = [(t0, 2)];
        assert_eq!(scale_up_limit(5, &events, &pods, t0 + secs(30)), 5);
        assert_eq!(scale_up_limit(5, &events, &pods, t0 + secs(60)), 7);
        let disabled = Rules {
            select: Select::Disabled,
            ..up
        };
        assert_eq!(scale_up_limit(3, &[], &disabled, t0), 3);
    }

    #[test]
    fn scale_down_limits_follow_kubernetes_arithmetic() {
        let t0 = Instant::now();
        let down = default_down(secs(300));
        assert_eq!(scale_down_limit(10, &[], &down, t0), 0);
        let rules = Rules {
            window: Duration::ZERO,
            select: Select::Max,
            policies: vec![
                Policy {
                    amount: Amount::Pods(1),
                    period: secs(60),
                },
                Policy {
                    amount: Amount::Percent(30),
                    period: secs(60),
                },
            ],
        };
        // 10 - 1 = 9 or 10 × 0.7 = 7: Max (largest change) → 7, Min → 9.
        assert_eq!(scale_down_limit(10, &[], &rules, t0), 7);
        let min = Rules {
            select: Select::Min,
            ..rules.clone()
        };
        assert_eq!(scale_down_limit(10, &[], &min, t0), 9);
        // Percent truncates: 5 × 0.7 = 3.5 → 3. Removed pods in the period count.
        assert_eq!(scale_down_limit(5, &[], &rules, t0), 3);
        assert_eq!(scale_down_limit(7, &[(t0, 3)], &rules, t0 + secs(10)), 7);
    }

    #[test]
    fn a_pods_policy_limits_scale_up_per_period() {
        let t0 = Instant::now();
        let b = behavior(
            json!({"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}),
        );
        let mut h = ScaleHistory::new(t0, 2);
        let d = h.decide(t0, Some(&b), &lim(1, 10, secs(300)), 2, 8);
        assert_eq!(d.desired, 3);
        assert_eq!(d.limited.reason, "ScaleUpLimit");
        assert!(d.limited.status);
        h.record_scale(t0, Some(&b), 2, 3);
        // Within the period: no more.
        let d = h.decide(t0 + secs(30), Some(&b), &lim(1, 10, secs(300)), 3, 8);
        assert_eq!((d.desired, d.limited.reason), (3, "ScaleUpLimit"));
        // After it: one more.
        let d = h.decide(t0 + secs(61), Some(&b), &lim(1, 10, secs(300)), 3, 8);
        assert_eq!(d.desired, 4);
        // The maximum wins when it is lower than the rate.
        let mut h = ScaleHistory::new(t0, 2);
        let d = h.decide(t0, Some(&b), &lim(1, 2, secs(300)), 2, 8);
        assert_eq!((d.desired, d.limited.reason), (2, "TooManyReplicas"));
    }

    #[test]
    fn scale_down_waits_for_the_window_then_follows_the_rate() {
        let t0 = Instant::now();
        let b = behavior(
            json!({"scaleDown": {"stabilizationWindowSeconds": 60, "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}}),
        );
        let mut h = ScaleHistory::new(t0, 8);
        let d = h.decide(t0 + secs(1), Some(&b), &lim(1, 10, secs(300)), 8, 1);
        assert_eq!(
            d.desired, 8,
            "the first recommendation (8) is in the window"
        );
        assert_eq!(d.able.reason, "ScaleDownStabilized");
        assert_eq!(d.limited.reason, "DesiredWithinRange");
        let d = h.decide(t0 + secs(61), Some(&b), &lim(1, 10, secs(300)), 8, 1);
        assert_eq!((d.desired, d.limited.reason), (4, "ScaleDownLimit"));
        h.record_scale(t0 + secs(61), Some(&b), 8, 4);
        // 50 % of the 8 at the period's start is used up.
        let d = h.decide(t0 + secs(62), Some(&b), &lim(1, 10, secs(300)), 4, 1);
        assert_eq!((d.desired, d.limited.reason), (4, "ScaleDownLimit"));
        // The minimum wins when it is higher than the rate.
        let mut h = ScaleHistory::new(t0, 8);
        let d = h.decide(t0 + secs(61), Some(&b), &lim(6, 10, secs(300)), 8, 1);
        assert_eq!((d.desired, d.limited.reason), (6, "TooFewReplicas"));
        // Disabled: never down.
        let off = behavior(
            json!({"scaleDown": {"selectPolicy": "Disabled", "stabilizationWindowSeconds": 0}}),
        );
        let mut h = ScaleHistory::new(t0, 8);
        let d = h.decide(t0 + secs(1), Some(&off), &lim(1, 10, secs(300)), 8, 1);
        assert_eq!((d.desired, d.limited.reason), (8, "ScaleDownLimit"));
    }

    #[test]
    fn scale_up_stabilization_takes_the_lowest_recent_recommendation() {
        let t0 = Instant::now();
        let b = behavior(json!({"scaleUp": {"stabilizationWindowSeconds": 60}}));
        let mut h = ScaleHistory::new(t0, 2);
        let d = h.decide(t0 + secs(1), Some(&b), &lim(1, 10, secs(300)), 2, 6);
        assert_eq!((d.desired, d.able.reason), (2, "ScaleUpStabilized"));
        let d = h.decide(t0 + secs(70), Some(&b), &lim(1, 10, secs(300)), 2, 6);
        assert_eq!((d.desired, d.able.reason), (6, "ReadyForNewScale"));
    }

    #[test]
    fn without_behavior_kubernetes_legacy_limits_apply() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut h = ScaleHistory::new(t0, 2);
        // At most max(2 × 2, 4) = 4 at once.
        let d = h.decide(t0, None, &lim(1, 10, secs(1)), 2, 9);
        assert_eq!((d.desired, d.limited.reason), (4, "ScaleUpLimit"));
        assert_eq!(d.able, READY);
        let d = h.decide(t0 + secs(2), None, &lim(1, 5, secs(1)), 4, 9);
        assert_eq!((d.desired, d.limited.reason), (5, "TooManyReplicas"));
        // Scale-down waits for the window: the 9 of 0.5 s ago still counts.
        let d = h.decide(t0 + ms(2500), None, &lim(2, 5, secs(1)), 5, 1);
        assert_eq!((d.desired, d.able.reason), (5, "ScaleDownStabilized"));
        let d = h.decide(t0 + secs(4), None, &lim(2, 5, secs(1)), 5, 1);
        assert_eq!((d.desired, d.limited.reason), (2, "TooFewReplicas"));
        let d = h.decide(t0 + secs(6), None, &lim(2, 5, secs(1)), 2, 2);
        assert_eq!((d.desired, d.limited, d.able), (2, WITHIN_RANGE, READY));
    }
}
