//! Property: a Chat request of the shapes Messages can carry, translated to
//! Messages ([`super::request`]) and back ([`super::to_chat`]), comes back
//! field for field (only `model`, which the account's upstream model
//! replaces, differs).

use proptest::prelude::*;
use serde_json::json;

use super::request::from_chat;
use super::to_chat::chat_request;
use crate::chat::arbitrary::{self, Carried};

const CARRIED: Carried = Carried {
    cache_control: true,
    user: true,
    serial_tools: true,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn chat_survives_messages_and_back(request in arbitrary::chat_request(CARRIED)) {
        let translated = from_chat(request.to_string().as_bytes(), "claude-x", false, None).unwrap();
        let mut back = chat_request(serde_json::from_slice(&translated.body).unwrap()).unwrap();
        prop_assert_eq!(&back["model"], "claude-x");
        back["model"] = json!("alias");
        prop_assert_eq!(back, request);
    }
}
