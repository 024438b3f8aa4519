//! `PUT` and `DELETE /kv/{key}`, plain or conditional (compare-and-swap):
//! `If-Match: "SEQ"` writes only if the key's live version has that seq
//! (the `ETag` a read or write answered), `If-Match: *` only if the key
//! holds a value, `If-None-Match: *` only if it holds none. The condition
//! is decided where writes are ordered, with the append; when it does not
//! hold, nothing is written and the answer is 412 with the key's current
//! seq in `ETag` (none for an absent key) and in the JSON body.

use crate::http::backend::Backend;
use crate::http::etag::{conflict, expectation, written};
use crate::http::params::{backend_error, check_value_len, seq_response};
use crate::http::percent::FormPairs;
use crate::http::request::Head;
use crate::http::response::Response;
use crate::http::router::Router;

impl<B: Backend> Router<B> {
    pub(crate) async fn kv_put(
        &self,
        head: &Head,
        key: Vec<u8>,
        value: Vec<u8>,
        query: &FormPairs,
    ) -> Result<Response, Response> {
        if let Some(lifetime) = crate::http::ttl::lifetime(head, query)? {
            return self.kv_put_ttl(head, key, value, lifetime).await;
        }
        let expect = expectation(head)?;
        check_value_len(&*self.backend, value.len())?;
        let b = &self.backend;
        let seq = match expect {
            None => b.put(key, value).await.map_err(backend_error)?,
            Some(e) => match b.put_if(key, value, e).await.map_err(backend_error)? {
                Ok(seq) => seq,
                Err(current) => return Err(conflict(current)),
            },
        };
        Ok(written(201, seq))
    }

    pub(crate) async fn kv_delete(&self, head: &Head, key: Vec<u8>) -> Result<Response, Response> {
        let deleted = match expectation(head)? {
            None => self.backend.delete(key).await.map_err(backend_error)?,
            Some(e) => match self
                .backend
                .delete_if(key, e)
                .await
                .map_err(backend_error)?
            {
                Ok(seq) => seq,
                Err(current) => return Err(conflict(current)),
            },
        };
        match deleted {
            Some(seq) => Ok(seq_response(200, seq)),
            None => Err(Response::error(404, "key not found")),
        }
    }
}
