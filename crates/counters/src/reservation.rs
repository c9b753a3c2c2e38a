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
    /// The most tokens the prompt can be (one per byte of the request),
    /// reserved instead of the estimate on a strict account
    /// ([`super::Candidate::strict`]); at least `prompt_tokens`.
    pub worst_prompt_tokens: u64,
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
            worst_prompt_tokens: tokens,
            completion: Completion::Exact(0),
        }
    }

    /// The same, with `worst` as the prompt's worst case (never below its
    /// estimate).
    pub fn with_worst_prompt(self, worst: u64) -> Self {
        Self {
            worst_prompt_tokens: worst.max(self.prompt_tokens),
            ..self
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
            worst_prompt_tokens: prompt_tokens,
            completion,
        }
    }

    /// The prompt as an account reserves it: its worst case on a strict
    /// account, else the estimate.
    pub fn prompt_for(&self, strict: bool) -> u64 {
        if strict {
            self.worst_prompt_tokens
        } else {
            self.prompt_tokens
        }
    }

    /// The fewest tokens an account must have room for to take the lease
    /// (a strict one: [`Reservation::least_for`]); the key's limits check
    /// this too.
    pub fn least(&self) -> u64 {
        self.least_for(false)
    }

    /// The fewest tokens an account, strict or not, must have room for.
    pub fn least_for(&self, strict: bool) -> u64 {
        let completion = match self.completion {
            Completion::Exact(tokens) => tokens,
            Completion::UpTo {
                min_per_choice,
                choices,
                ..
            } => min_per_choice.saturating_mul(choices),
        };
        self.prompt_for(strict).saturating_add(completion)
    }

    /// The most tokens the lease could reserve (on a strict account with
    /// unlimited room).
    pub fn most(&self) -> u64 {
        self.fit(true, None, None)
            .map_or(u64::MAX, |fit| fit.tokens)
    }

    /// What the lease reserves on an account (strict or not) with
    /// `account_room` tokens left, for a key with `key_room` left (`None`:
    /// unlimited); `None` when the account has less than
    /// [`Reservation::least_for`] it or the key less than
    /// [`Reservation::least`]. The key's room bounds the completion only:
    /// a strict account's worst-case prompt is the account's concern.
    pub fn fit(
        &self,
        strict: bool,
        account_room: Option<u64>,
        key_room: Option<u64>,
    ) -> Option<Fit> {
        if account_room.is_some_and(|room| room < self.least_for(strict))
            || key_room.is_some_and(|room| room < self.least())
        {
            return None;
        }
        let prompt = self.prompt_for(strict);
        Some(match self.completion {
            Completion::Exact(_) => Fit {
                tokens: self.least_for(strict),
                completion_cap: None,
            },
            Completion::UpTo {
                max_per_choice,
                choices,
                ..
            } => {
                let within = |room: Option<u64>, prompt: u64| {
                    room.map_or(u64::MAX, |room| (room - prompt) / choices)
                };
                let cap = max_per_choice
                    .min(within(account_room, prompt))
                    .min(within(key_room, self.prompt_tokens));
                Fit {
                    tokens: prompt.saturating_add(cap.saturating_mul(choices)),
                    completion_cap: Some(cap),
                }
            }
        })
    }

    /// Whether the numbers make sense: at least one choice, and an uncapped
    /// request's least room within its most.
    pub(crate) fn is_valid(&self) -> bool {
        if self.worst_prompt_tokens < self.prompt_tokens {
            return false;
        }
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
mod tests {
    use super::*;

    #[test]
    fn a_client_cap_is_reserved_whole_or_not_at_all() {
        let reservation = Reservation::for_request(100, Some(50), 2, 4096, 256);
        assert_eq!(reservation.least(), 200);
        assert_eq!(reservation.fit(false, Some(199), None), None);
        let fit = reservation.fit(false, Some(10_000), None).unwrap();
        assert_eq!(fit.tokens, 200);
        assert_eq!(fit.completion_cap, None);
        assert_eq!(
            Reservation::exact(7)
                .fit(false, None, None)
                .map(|fit| fit.tokens),
            Some(7)
        );
    }

    #[test]
    fn an_uncapped_request_is_lowered_to_the_room_left() {
        let reservation = Reservation::for_request(100, None, 1, 4096, 256);
        assert_eq!(reservation.least(), 356);
        let fit = |room| reservation.fit(false, room, None);
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
        let fit = reservation.fit(false, Some(101), None).unwrap();
        assert_eq!(fit.completion_cap, Some(30));
        assert_eq!(fit.tokens, 100);
        assert_eq!(reservation.most(), 310);
    }

    #[test]
    fn a_strict_account_reserves_the_worst_prompt_and_the_key_bounds_the_answer() {
        let reservation = Reservation::for_request(100, None, 1, 4096, 256).with_worst_prompt(400);
        assert_eq!(reservation.least(), 356);
        assert_eq!(reservation.least_for(true), 656);
        assert_eq!(reservation.fit(true, Some(655), None), None);
        let fit = reservation.fit(true, Some(1_000), None).unwrap();
        assert_eq!((fit.tokens, fit.completion_cap), (1_000, Some(600)));
        // Not strict: the estimate.
        let fit = reservation.fit(false, Some(1_000), None).unwrap();
        assert_eq!(fit.completion_cap, Some(900));
        // The key's room bounds the completion, by the estimate.
        let fit = reservation.fit(true, Some(5_000), Some(500)).unwrap();
        assert_eq!((fit.tokens, fit.completion_cap), (800, Some(400)));
        assert_eq!(reservation.fit(true, Some(5_000), Some(355)), None);
        assert_eq!(reservation.most(), 400 + 4096);
        // A worst case below the estimate is the estimate.
        assert_eq!(
            Reservation::exact(50).with_worst_prompt(10).least_for(true),
            50
        );
    }

    #[test]
    fn the_minimum_never_passes_the_maximum() {
        let reservation = Reservation::for_request(0, None, 0, 100, 256);
        assert!(reservation.is_valid());
        assert_eq!(reservation.least(), 100);
        let odd = Reservation {
            prompt_tokens: 0,
            worst_prompt_tokens: 0,
            completion: Completion::UpTo {
                max_per_choice: 5,
                min_per_choice: 6,
                choices: 1,
            },
        };
        assert!(!odd.is_valid());
    }
}
