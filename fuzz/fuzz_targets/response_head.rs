//! The response head parser and response framing.
//!
//! A complete head must lie inside the input, every prefix of it must parse
//! as "need more", and `response_meta` (for a GET and for a HEAD) must give a
//! framing consistent with the status: no body for HEAD, 1xx, 204 and 304; a
//! body until close always closes the connection.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringway::http::framing::response_meta;
use ringway::http::parse::{parse_response, Parsed};
use ringway::http::BodyKind;
use ringway_fuzz::{escaped, XorShift};


fuzz_target!(|data: &[u8]| {
    for max_headers in [8, 100] {
        let (mut head, len) = match parse_response(data, max_headers) {
            Ok(Parsed::Complete(h, len)) => (h, len),
            Ok(Parsed::Partial) | Err(_) => continue,
        };
        assert!(len <= data.len(), "head length {len} past the input");
        assert!(head.headers.len() <= max_headers);
        for span in std::iter::once(head.reason).chain(head.headers.iter().flat_map(|h| [h.name, h.value])) {
            assert!(span.start <= span.end && span.end as usize <= len, "span {span:?} outside the head");
        }
        assert!((100..=999).contains(&head.status), "status {}: {}", head.status, escaped(data));
        let mut rng = XorShift::from_bytes(data);
        for cut in [len - 1, rng.step(len) - 1] {
            assert!(
                matches!(parse_response(&data[..cut], max_headers), Ok(Parsed::Partial)),
                "prefix {cut} of a complete {len}-byte head not partial: {}",
                escaped(data)
            );
        }
        // As the proxy does: the head's bytes are owned by the head.
        head.buf = Bytes::copy_from_slice(&data[..len]);
        let _ = head.reason();
        let _ = head.header("content-length");
        for head_request in [false, true] {
            let Ok(meta) = response_meta(&head, head_request) else {
                continue;
            };
            let bodiless = head_request || head.status < 200 || head.status == 204 || head.status == 304;
            if bodiless {
                assert_eq!(meta.body, BodyKind::Empty, "body for a bodiless answer: {}", escaped(data));
            }
            if meta.body == BodyKind::UntilClose {
                assert!(meta.close, "body until close on a kept connection: {}", escaped(data));
            }
            for s in &meta.connection_names {
                assert!(s.end as usize <= len);
            }
        }
    }
});
