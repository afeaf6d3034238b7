//! Every encoder's output decodes to what went in; every decoder survives arbitrary bytes.

use proptest::prelude::*;
use protocol::{mux, wire};

proptest! {
    #[test]
    fn varint_round_trips(v in any::<i32>()) {
        let mut out = Vec::new();
        wire::put_varint(&mut out, v);
        prop_assert_eq!(wire::get_varint(&out).unwrap(), Some((v, out.len())));
    }

    #[test]
    fn varlong_round_trips(v in 0i64..(1 << 55), min in 3usize..=4) {
        let mut out = Vec::new();
        wire::put_varlong(&mut out, v, min);
        prop_assert_eq!(wire::get_varlong(&out, min).unwrap(), Some((v, out.len())));
    }

    #[test]
    fn ndx_sequences_round_trip(seq in prop::collection::vec(prop_oneof![-200i32..200_000, Just(-1)], 0..50)) {
        let (mut enc, mut dec) = (wire::NdxCodec::default(), wire::NdxCodec::default());
        let mut out = Vec::new();
        for &n in &seq {
            enc.encode(&mut out, n);
        }
        let mut at = 0;
        for &n in &seq {
            let (got, used) = dec.decode(&out[at..]).unwrap().unwrap();
            prop_assert_eq!(got, n);
            at += used;
        }
        prop_assert_eq!(at, out.len());
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = wire::get_varint(&bytes);
        let _ = wire::get_varlong(&bytes, 3);
        let _ = wire::get_vstring(&bytes);
        let _ = wire::NdxCodec::default().decode(&bytes);
        let _ = mux::decode_header(&bytes);
        let _ = protocol::daemon::parse_greeting(&bytes);
        let _ = protocol::daemon::take_line(&mut bytes.clone(), 32);
    }
}
