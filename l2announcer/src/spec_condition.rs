//! The `ferrolb.io/InvalidSpec` condition that the announcer writes on the user objects it reads
//! (L2AnnouncementPolicy, BGPPeer, BGPAdvertisement, BFDProfile): one rule for all of them.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use ferrolb_api::names::conditions;

/// The condition an object should show, or `None` when the one it shows (`current`) already says
/// it: True with every problem joined by "; ", or False when `problems` is empty.
/// `lastTransitionTime` is kept while the status stays the same.
pub fn invalid_spec(
    current: Option<&Condition>,
    problems: &[String],
    generation: Option<i64>,
) -> Option<serde_json::Value> {
    let (status, reason, message) = if problems.is_empty() {
        ("False", "Valid", String::new())
    } else {
        ("True", "InvalidSpec", problems.join("; "))
    };
    if current.is_some_and(|c| {
        c.status == status
            && c.reason == reason
            && c.message == message
            && c.observed_generation == generation
    }) {
        return None;
    }
    let since = current.filter(|c| c.status == status).map_or_else(
        || Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_default().to_string(),
        |c| c.last_transition_time.0.to_string(),
    );
    let mut condition = serde_json::json!({
        "type": conditions::INVALID_SPEC,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    });
    if let Some(g) = generation {
        condition["observedGeneration"] = serde_json::json!(g);
    }
    Some(condition)
}

/// The object's `ferrolb.io/InvalidSpec` condition among `conditions`.
pub fn current(all: &[Condition]) -> Option<&Condition> {
    all.iter().find(|c| c.type_ == conditions::INVALID_SPEC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn shown(status: &str, message: &str, generation: i64) -> Condition {
        Condition {
            type_: conditions::INVALID_SPEC.into(),
            status: status.into(),
            reason: if status == "True" { "InvalidSpec" } else { "Valid" }.into(),
            message: message.into(),
            observed_generation: Some(generation),
            last_transition_time: Time("2026-01-02T03:04:05Z".parse().unwrap()),
        }
    }

    #[test]
    fn written_only_on_change_and_the_transition_time_is_kept() {
        let problems = vec!["spec.holdTime: bad".to_string()];
        assert!(invalid_spec(Some(&shown("True", "spec.holdTime: bad", 2)), &problems, Some(2)).is_none());
        let next = invalid_spec(Some(&shown("True", "old", 1)), &problems, Some(2)).unwrap();
        assert_eq!(next["lastTransitionTime"], "2026-01-02T03:04:05Z", "still True: same transition");
        assert_eq!(next["message"], "spec.holdTime: bad");
        let fixed = invalid_spec(Some(&shown("True", "old", 2)), &[], Some(3)).unwrap();
        assert_eq!((fixed["status"].as_str(), fixed["reason"].as_str()), (Some("False"), Some("Valid")));
        assert_ne!(fixed["lastTransitionTime"], "2026-01-02T03:04:05Z");
        assert_eq!(fixed["observedGeneration"], 3);
    }
}
