//! What one lease reserves: the prompt, and room for the completion.
//!
//! A client that caps its completion (`max_tokens`) gets exactly that room
//! or nothing: its cap is never lowered. A client that sets no cap gets the
//! model's maximum output, lowered to what the chosen account (and the
//! client key) has left once the prompt is counted, but never below a
//! minimum worth answering; the lowered cap is what the gateway then sends
//! upstream, so the answer cannot outgrow its reservation.
//!
//! Both counter stores decide with these rules (the Redis lease script
//! repeats [`Reservation::fit`] in Lua, and the conformance suite holds
//! the two to the same answers).

/// Tokens one lease asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The prompt's estimate.
    pub prompt_tokens: u64,
    pub completion: Completion,
}

/// The completion part of a [`Reservation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The client's own cap, every choice included: reserved whole, never
    /// lowered.
    Exact(u64),
    /// No cap from the client: `max_per_choice` for each of `choices`,
    /// lowered to the room there is, and not granted below
    /// `min_per_choice`.
    UpTo {
        max_per_choice: u64,
        min_per_choice: u64,
        choices: u64,
    },
}

/// A reservation fitted to the room of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// Tokens reserved: the prompt plus the completion room.
    pub tokens: u64,
    /// The completion cap per choice the reservation assumed, when the
    /// client set none (to be sent upstream); `None` for an exact one.
    pub completion_cap: Option<u64>,
}

impl Reservation {
    /// Exactly `tokens`, nothing to lower.
    pub const fn exact(tokens: u64) -> Self {
        Self {
            prompt_tokens: tokens,
            completion: Completion::Exact(0),
        }
    }

    /// A completion cap from the client (`Some`, per choice, never
    /// lowered) or the model's `max_output` lowered as needed, for
    /// `choices` answers (at least one).
    pub fn for_request(
        prompt_tokens: u64,
        client_cap: Option<u64>,
        choices: u64,
        max_output: u64,
        min_output: u64,
    ) -> Self {
        let choices = choices.max(1);
        let completion = match client_cap {
            Some(cap) => Completion::Exact(cap.saturating_mul(choices)),
            None => {
                let max_per_choice = max_output.max(1);
                Completion::UpTo {
                    max_per_choice,
                    min_per_choice: min_output.clamp(1, max_per_choice),
                    choices,
                }
            }
        };
        Self {
            prompt_tokens,
            completion,
        }
    }

    /// The fewest tokens an account must have room for to take the lease.
    pub fn least(&self) -> u64 {
        let completion = match self.completion {
            Completion::Exact(tokens) => tokens,
            Completion::UpTo {
                min_per_choice,
                choices,
                ..
            } => min_per_choice.saturating_mul(choices),
        };
        self.prompt_tokens.saturating_add(completion)
    }

    /// The most tokens the lease could reserve (with unlimited room).
    pub fn most(&self) -> u64 {
        self.fit(None).map_or(u64::MAX, |fit| fit.tokens)
    }

    /// What the lease reserves where `room` tokens are left (`None`:
    /// unlimited), or `None` when less than [`Reservation::least`] is.
    pub fn fit(&self, room: Option<u64>) -> Option<Fit> {
        if room.is_some_and(|room| room < self.least()) {
            return None;
        }
        Some(match self.completion {
            Completion::Exact(_) => Fit {
                tokens: self.least(),
                completion_cap: None,
            },
            Completion::UpTo {
                max_per_choice,
                choices,
                ..
            } => {
                let cap = match room {
                    None => max_per_choice,
                    Some(room) => max_per_choice.min((room - self.prompt_tokens) / choices),
                };
                Fit {
                    tokens: self
                        .prompt_tokens
                        .saturating_add(cap.saturating_mul(choices)),
                    completion_cap: Some(cap),
                }
            }
        })
    }

    /// Whether the numbers make sense: at least one choice, and an uncapped
    /// request's least room within its most.
    pub(crate) fn is_valid(&self) -> bool {
        match self.completion {
            Completion::Exact(_) => true,
            Completion::UpTo {
                max_per_choice,
                min_per_choice,
                choices,
            } => choices >= 1 && min_per_choice >= 1 && min_per_choice <= max_per_choice,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_client_cap_is_reserved_whole_or_not_at_all() {
        let reservation = Reservation::for_request(100, Some(50), 2, 4096, 256);
        assert_eq!(reservation.least(), 200);
        assert_eq!(reservation.fit(Some(199)), None);
        let fit = Reservation::for_request(100, Some(50), 2, 4096, 256)
            .fit(Some(10_000))
            .unwrap();
        assert_eq!(fit.tokens, 200);
        assert_eq!(fit.completion_cap, None);
        assert_eq!(
            Reservation::exact(7).fit(None).map(|fit| fit.tokens),
            Some(7)
        );
    }

    #[test]
    fn an_uncapped_request_is_lowered_to_the_room_left() {
        let reservation = Reservation::for_request(100, None, 1, 4096, 256);
        assert_eq!(reservation.least(), 356);
        let fit = |room| reservation.fit(room);
        assert_eq!(
            fit(None),
            Some(Fit {
                tokens: 4196,
                completion_cap: Some(4096)
            })
        );
        assert_eq!(
            fit(Some(1_000)),
            Some(Fit {
                tokens: 1_000,
                completion_cap: Some(900)
            })
        );
        assert_eq!(fit(Some(356)).and_then(|fit| fit.completion_cap), Some(256));
        assert_eq!(fit(Some(355)), None);
    }

    #[test]
    fn choices_share_the_room_evenly() {
        let reservation = Reservation::for_request(10, None, 3, 100, 5);
        assert_eq!(reservation.least(), 25);
        let fit = reservation.fit(Some(101)).unwrap();
        assert_eq!(fit.completion_cap, Some(30));
        assert_eq!(fit.tokens, 100);
        assert_eq!(reservation.most(), 310);
    }

    #[test]
    fn the_minimum_never_passes_the_maximum() {
        let reservation = Reservation::for_request(0, None, 0, 100, 256);
        assert!(reservation.is_valid());
        assert_eq!(reservation.least(), 100);
        let odd = Reservation {
            prompt_tokens: 0,
            completion: Completion::UpTo {
                max_per_choice: 5,
                min_per_choice: 6,
                choices: 1,
            },
        };
        assert!(!odd.is_valid());
    }
}
