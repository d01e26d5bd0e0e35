//! The raw-bytes helpers of every suite live in icap-test-support (h2-support style);
//! this module only brings them, and EICAR, into scope.

pub(crate) use icap_mock_server::EICAR;
pub(crate) use icap_test_support::{
    Answer, Conn, RES_HDR, chunks, filler, one_chunk, reqmod, respmod, respmod_with_url,
};
