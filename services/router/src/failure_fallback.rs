//! Fallbacks for the failures that another deployment of the same route
//! would share: a prompt longer than the model's context window, and a
//! content-policy refusal. They are not retried on another account; when
//! the route asked for names fallbacks of that class, the next attempt
//! leases one of those instead (quota plans them), and a fallback that
//! fails the same way gives way to the next in the route's list.

use tollgate_core::ErrorKind;
use tollgate_proto::v1::{FallbackClass, LeaseGrant};

/// The class of fallback a failure of `kind` calls for, if any.
pub(crate) fn class_of(kind: ErrorKind) -> Option<FallbackClass> {
    match kind {
        ErrorKind::ContextLengthExceeded => Some(FallbackClass::ContextWindow),
        ErrorKind::ContentPolicy => Some(FallbackClass::ContentPolicy),
        _ => None,
    }
}

/// Where one request stands on its route's failure fallbacks.
#[derive(Debug, Default)]
pub(crate) struct FailureFallbacks {
    /// The classes the route asked for has fallbacks for, as its first
    /// grant said.
    offered: Vec<FallbackClass>,
    /// The class the request is served by, once an attempt failed that
    /// way; unspecified before.
    class: FallbackClass,
    /// The fallbacks of that class that failed the same way.
    tried: Vec<String>,
}

impl FailureFallbacks {
    /// Takes what the request's first grant says of its route.
    pub(crate) fn learn(&mut self, first: &LeaseGrant) {
        self.offered = first.fallback_classes().collect();
    }

    /// Whether the failure of `lease`'s attempt with `kind` moves the
    /// request on to a fallback of its class (and records it). A fallback
    /// that fails for the other class ends the request: its route's lists
    /// are not the request's.
    pub(crate) fn advance(&mut self, kind: ErrorKind, lease: &LeaseGrant) -> bool {
        let Some(class) = class_of(kind) else {
            return false;
        };
        if !self.offered.contains(&class) {
            return false;
        }
        if self.class == FallbackClass::Unspecified {
            self.class = class;
        } else if self.class == class {
            self.tried.push(lease.fallback.clone());
        } else {
            return false;
        }
        true
    }

    /// The class the next lease asks for.
    pub(crate) fn class(&self) -> FallbackClass {
        self.class
    }

    /// The fallbacks the next lease must not ask again.
    pub(crate) fn tried(&self) -> &[String] {
        &self.tried
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(classes: &[FallbackClass], fallback: &str) -> LeaseGrant {
        LeaseGrant {
            fallback: fallback.into(),
            fallback_classes: classes.iter().map(|class| i32::from(*class)).collect(),
            ..LeaseGrant::default()
        }
    }

    #[test]
    fn only_context_and_policy_failures_have_a_class() {
        assert_eq!(
            class_of(ErrorKind::ContextLengthExceeded),
            Some(FallbackClass::ContextWindow)
        );
        assert_eq!(
            class_of(ErrorKind::ContentPolicy),
            Some(FallbackClass::ContentPolicy)
        );
        for kind in [
            ErrorKind::InvalidRequest,
            ErrorKind::UpstreamError,
            ErrorKind::Overloaded,
            ErrorKind::UpstreamTimeout,
        ] {
            assert_eq!(class_of(kind), None, "{kind}");
        }
    }

    #[test]
    fn a_route_without_such_fallbacks_ends_the_request() {
        let mut fallbacks = FailureFallbacks::default();
        fallbacks.learn(&grant(&[FallbackClass::ContentPolicy], ""));
        assert!(!fallbacks.advance(ErrorKind::ContextLengthExceeded, &grant(&[], "")));
        assert!(!fallbacks.advance(ErrorKind::InvalidRequest, &grant(&[], "")));
        assert_eq!(fallbacks.class(), FallbackClass::Unspecified);
    }

    #[test]
    fn fallbacks_that_fail_the_same_way_give_way_to_the_next() {
        let mut fallbacks = FailureFallbacks::default();
        let first = grant(
            &[FallbackClass::ContextWindow, FallbackClass::ContentPolicy],
            "",
        );
        fallbacks.learn(&first);
        assert!(fallbacks.advance(ErrorKind::ContextLengthExceeded, &first));
        assert_eq!(fallbacks.class(), FallbackClass::ContextWindow);
        assert!(fallbacks.tried().is_empty());
        // The route itself failed; its fallback "long" too.
        let long = grant(&[], "long");
        assert!(fallbacks.advance(ErrorKind::ContextLengthExceeded, &long));
        assert_eq!(fallbacks.tried(), ["long"]);
        // A fallback refused for the other class ends it.
        assert!(!fallbacks.advance(ErrorKind::ContentPolicy, &grant(&[], "longer")));
        assert_eq!(fallbacks.class(), FallbackClass::ContextWindow);
    }
}
