//! What a failed Kubernetes API request means to the component that sent it: the project's one
//! reading of HTTP status codes, so that the IPAM controller, the announcer and the Lease elector
//! retry alike and count failures under the same labels.

/// A failed request, by what the sender should do about it. The variants are the `reason` label
/// values of the components' API-failure metrics ([`ApiFailure::metric_label`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiFailure {
    /// 409: the object changed since it was read. The watch brings the new version at once: decide
    /// again soon.
    Conflict,
    /// 404: the object is gone (its delete event follows); nothing to retry.
    NotFound,
    /// 410: a watch or list from a version older than the server keeps: list again.
    Gone,
    /// 400, 401, 403, 422: the request itself is refused (malformed, invalid, or not allowed).
    /// Retrying the same request soon changes nothing: back off long and report it.
    Refused,
    /// 429: the server asks for less load.
    Throttled,
    /// 5xx, a timeout or a broken connection: the server may or may not have applied the request.
    Unavailable,
}

impl ApiFailure {
    /// How `error` should be handled.
    pub fn of(error: &kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => match status.code {
                409 => Self::Conflict,
                404 => Self::NotFound,
                410 => Self::Gone,
                400 | 401 | 403 | 422 => Self::Refused,
                429 => Self::Throttled,
                _ => Self::Unavailable,
            },
            _ => Self::Unavailable,
        }
    }

    /// The metric label for this failure.
    pub fn metric_label(self) -> &'static str {
        match self {
            Self::Conflict => "conflict",
            Self::NotFound => "not_found",
            Self::Gone => "gone",
            Self::Refused => "refused",
            Self::Throttled => "throttled",
            Self::Unavailable => "unavailable",
        }
    }

    /// Whether `error` says the object does not exist.
    pub fn is_not_found(error: &kube::Error) -> bool {
        Self::of(error) == Self::NotFound
    }

    /// The HTTP status code of an API answer, for messages to a user (`None` for transport errors).
    pub fn status_code(error: &kube::Error) -> Option<u16> {
        match error {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status::failure("x", "Reason").with_code(code)))
    }

    #[test]
    fn codes_map_to_what_the_sender_does() {
        let cases = [
            (409, ApiFailure::Conflict),
            (404, ApiFailure::NotFound),
            (410, ApiFailure::Gone),
            (400, ApiFailure::Refused),
            (401, ApiFailure::Refused),
            (403, ApiFailure::Refused),
            (422, ApiFailure::Refused),
            (429, ApiFailure::Throttled),
            (500, ApiFailure::Unavailable),
            (503, ApiFailure::Unavailable),
        ];
        for (code, want) in cases {
            assert_eq!(ApiFailure::of(&api(code)), want, "{code}");
        }
        assert_eq!(ApiFailure::status_code(&api(422)), Some(422));
        assert!(ApiFailure::is_not_found(&api(404)));
        assert!(!ApiFailure::is_not_found(&api(409)));
    }
}
