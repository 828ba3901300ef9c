//! `body::decompress` with every encoding and a small output cap. First byte: bits 0-2
//! pick the encoding; bit 7 set means "compress the rest first, then decompress", which
//! must give the rest back exactly (or refuse it as too large).
#![no_main]

use std::io::Write;

use bytes::Bytes;
use ingest::Error;
use ingest::fuzzing::{Encoding, decompress};
use libfuzzer_sys::fuzz_target;
use sightline_fuzz::DECOMPRESS_CAP;

const ENCODINGS: [Encoding; 5] = [
    Encoding::Identity,
    Encoding::Gzip,
    Encoding::Deflate,
    Encoding::Snappy,
    Encoding::Zstd,
];

fn compress(encoding: Encoding, data: &[u8]) -> Vec<u8> {
    match encoding {
        Encoding::Identity => data.to_vec(),
        Encoding::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(data).expect("gzip into a Vec");
            encoder.finish().expect("gzip into a Vec")
        }
        Encoding::Deflate => {
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(data).expect("zlib into a Vec");
            encoder.finish().expect("zlib into a Vec")
        }
        Encoding::Snappy => snap::raw::Encoder::new()
            .compress_vec(data)
            .expect("snappy into a Vec"),
        Encoding::Zstd => zstd::bulk::compress(data, 1).expect("zstd into a Vec"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let encoding = ENCODINGS[usize::from(selector & 7) % ENCODINGS.len()];
    let round_trip = selector & 0x80 != 0;
    let body = if round_trip {
        compress(encoding, rest)
    } else {
        rest.to_vec()
    };
    match decompress(encoding, Bytes::from(body), DECOMPRESS_CAP) {
        Ok(out) => {
            assert!(
                out.len() as u64 <= DECOMPRESS_CAP,
                "{encoding:?} gave {} bytes past the {DECOMPRESS_CAP} cap",
                out.len()
            );
            if round_trip || encoding == Encoding::Identity {
                assert_eq!(&out[..], rest, "{encoding:?} did not give the input back");
            }
        }
        Err(Error::PayloadTooLarge(_)) => {
            if round_trip {
                assert!(
                    rest.len() as u64 > DECOMPRESS_CAP,
                    "{encoding:?}: {} bytes refused as over the cap",
                    rest.len()
                );
            }
        }
        Err(error) => {
            assert!(
                !round_trip,
                "{encoding:?} could not read back its own output: {error}"
            );
        }
    }
});
