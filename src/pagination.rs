//! Walking cursor-paginated lists.
//!
//! List operations return one page of `items` and an opaque `next_cursor` (`null` on the last
//! page). A [`Pager`] remembers the cursor between calls: [`Pager::next_page`] fetches the next
//! page until the end, [`Pager::collect_all`] gathers everything. The wasm layer wraps a pager
//! as a JS async iterator.
//!
//! The pager is lazy (nothing is sent until the first `next_page`) and defensive: a server
//! that hands out a cursor it already gave would loop forever, so a repeated cursor is an
//! [`Error::Decode`] instead.

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use crate::client::{Call, Client};
use crate::error::{Error, Result};
use crate::model::Page;

/// Largest page size the contract allows.
pub const MAX_PAGE_LIMIT: u32 = 500;

/// Iterates the pages of one list operation. Created by the client's `list_*` methods.
pub struct Pager<T> {
    client: Client,
    path: String,
    query: Vec<(&'static str, String)>,
    first_query: Vec<(&'static str, String)>,
    limit: Option<u32>,
    cursor: Option<String>,
    seen: HashSet<String>,
    done: bool,
    _items: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Pager<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pager")
            .field("path", &self.path)
            .field("query", &self.query)
            .field("limit", &self.limit)
            .field("cursor", &self.cursor)
            .field("done", &self.done)
            .finish()
    }
}

impl<T: DeserializeOwned> Pager<T> {
    pub(crate) fn new(client: Client, path: String, query: Vec<(&'static str, String)>) -> Self {
        Self {
            client,
            path,
            query,
            first_query: Vec::new(),
            limit: None,
            cursor: None,
            seen: HashSet::new(),
            done: false,
            _items: PhantomData,
        }
    }

    /// Adds query parameters sent only with the first page (no cursor): the contract rejects
    /// `start` together with `cursor` because the cursor already encodes the position.
    pub(crate) fn first_page_query(mut self, query: Vec<(&'static str, String)>) -> Self {
        self.first_query = query;
        self
    }

    /// Requests pages of `limit` items (clamped to 1–[`MAX_PAGE_LIMIT`]).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit.clamp(1, MAX_PAGE_LIMIT));
        self
    }

    /// Resumes from a `next_cursor` saved earlier.
    pub fn starting_at(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Whether the last page has been returned.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The cursor the next call will send (save it to resume later).
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// Fetches the next page; `Ok(None)` once the end was reached. On error the pager stays
    /// where it was, so calling again retries the same page.
    pub async fn next_page(&mut self) -> Result<Option<Page<T>>> {
        if self.done {
            return Ok(None);
        }
        let mut call = Call::get(self.path.clone());
        call.query = self.query.clone();
        if self.cursor.is_none() {
            call.query.extend(self.first_query.iter().cloned());
        }
        let call = call
            .query_opt("limit", self.limit)
            .query_opt("cursor", self.cursor.as_deref());
        let page: Page<T> = self.client.json(call).await?;
        match &page.next_cursor {
            Some(next) => {
                if self.cursor.as_deref() == Some(next.as_str()) || !self.seen.insert(next.clone())
                {
                    self.done = true;
                    return Err(Error::decode(
                        200,
                        "server repeated a pagination cursor",
                        None,
                    ));
                }
                self.cursor = Some(next.clone());
            }
            None => {
                self.cursor = None;
                self.done = true;
            }
        }
        Ok(Some(page))
    }

    /// Fetches every remaining page and returns all items in order.
    pub async fn collect_all(mut self) -> Result<Vec<T>> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page.items);
        }
        Ok(all)
    }
}
