//! The custom-domain lifecycle as a transition table.

use serde::{Deserialize, Serialize};

/// The state of a customer's hostname on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainState {
    /// Waiting for the ownership TXT record.
    PendingOwnership,
    /// Records are being checked.
    Verifying,
    /// Ownership and DNS verified.
    Verified,
    /// A certificate is being issued.
    IssuingCert,
    /// Served with a valid certificate.
    Live,
    /// A record that made it live changed or disappeared.
    Drifted,
    /// Removed by the customer or the platform; final.
    Archived,
}

/// Every allowed transition; anything else is refused.
pub const TRANSITIONS: &[(DomainState, DomainState)] = {
    use DomainState::*;
    &[
        (PendingOwnership, Verifying),
        (Verifying, Verified),
        (Verifying, PendingOwnership),
        (Verified, IssuingCert),
        (Verified, Drifted),
        (IssuingCert, Live),
        (IssuingCert, Verified),
        (IssuingCert, Drifted),
        (Live, Drifted),
        (Live, IssuingCert),
        (Drifted, Verifying),
        (Drifted, Live),
        (PendingOwnership, Archived),
        (Verifying, Archived),
        (Verified, Archived),
        (IssuingCert, Archived),
        (Live, Archived),
        (Drifted, Archived),
    ]
};

/// A transition the table does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot go from {from:?} to {to:?}")]
pub struct InvalidTransition {
    /// Current state.
    pub from: DomainState,
    /// Requested state.
    pub to: DomainState,
}

impl DomainState {
    /// Every state.
    pub const ALL: [DomainState; 7] = [
        Self::PendingOwnership,
        Self::Verifying,
        Self::Verified,
        Self::IssuingCert,
        Self::Live,
        Self::Drifted,
        Self::Archived,
    ];

    /// Whether `self → to` is in [`TRANSITIONS`].
    #[must_use]
    pub fn can_go_to(self, to: DomainState) -> bool {
        TRANSITIONS.contains(&(self, to))
    }

    /// `to` if the transition is allowed.
    ///
    /// # Errors
    /// [`InvalidTransition`] otherwise.
    pub fn go_to(self, to: DomainState) -> Result<DomainState, InvalidTransition> {
        if self.can_go_to(to) { Ok(to) } else { Err(InvalidTransition { from: self, to }) }
    }

    /// Whether the hostname holds its claim (one active claim per hostname):
    /// verified or later, not archived.
    #[must_use]
    pub fn holds_claim(self) -> bool {
        matches!(self, Self::Verified | Self::IssuingCert | Self::Live | Self::Drifted)
    }
}

#[cfg(test)]
mod tests {
    use super::{DomainState::*, *};

    #[test]
    fn every_allowed_transition_works_and_every_other_is_refused() {
        for from in DomainState::ALL {
            for to in DomainState::ALL {
                let allowed = TRANSITIONS.contains(&(from, to));
                assert_eq!(from.go_to(to).is_ok(), allowed, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn archived_is_final_and_the_happy_path_exists() {
        assert!(DomainState::ALL.iter().all(|s| !Archived.can_go_to(*s)));
        let path = [PendingOwnership, Verifying, Verified, IssuingCert, Live, Drifted, Verifying];
        for pair in path.windows(2) {
            assert!(pair[0].can_go_to(pair[1]), "{pair:?}");
        }
        assert!(!PendingOwnership.can_go_to(Live));
        assert!(!Live.can_go_to(PendingOwnership));
    }
}
