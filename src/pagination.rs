//! Walking cursor-paginated lists.
//!
//! List operations return one page of `items` and an opaque `next_cursor` (`null` on the last
//! page). Every list method of the client returns a [`Pager`], which remembers the cursor
//! between calls: [`Pager::next_page`] fetches the next page until the end,
//! [`Pager::collect_all`] gathers everything and [`Pager::into_stream`] yields the items one by
//! one as a `futures_core::Stream` (fetching a page when the previous one is used up). Per-page
//! options ([`Pager::timeout`], [`Pager::deadline`]) apply to every page request. The wasm layer
//! wraps a pager as a JS async iterator.
//!
//! The pager is lazy (nothing is sent until the first `next_page`) and defensive: a server
//! that hands out a cursor it already gave would loop forever, so a repeated cursor is an
//! [`Error::Decode`] instead.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::client::{Call, Client, RequestOptions};
use crate::error::{Error, Result};
use crate::model::Page;
use crate::transport::{BoxFuture, MaybeSend};

/// Largest page size the contract allows.
pub const MAX_PAGE_LIMIT: u32 = 500;

/// The order of a list (the `order` query parameter): by creation, oldest first (the
/// server's default) or newest first. A cursor stays bound to the order it was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first.
    #[default]
    Asc,
    /// Newest first: the latest N runs are the first page.
    Desc,
}

impl Order {
    /// The query parameter's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

/// Iterates the pages of one list operation. Created by the client's `list_*` methods.
pub struct Pager<T> {
    client: Client,
    /// The list's path, or why it could not be built (reported by the first `next_page`, so
    /// every list method returns a plain `Pager`).
    path: std::result::Result<String, String>,
    options: RequestOptions,
    query: Vec<(&'static str, String)>,
    first_query: Vec<(&'static str, String)>,
    limit: Option<u32>,
    /// Largest `limit` this list takes ([`MAX_PAGE_LIMIT`], or more for manifest files).
    max_limit: u32,
    order: Option<Order>,
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
            .field("order", &self.order)
            .field("cursor", &self.cursor)
            .field("done", &self.done)
            .finish()
    }
}

impl<T: DeserializeOwned> Pager<T> {
    pub(crate) fn new(
        client: Client,
        path: Result<String>,
        query: Vec<(&'static str, String)>,
    ) -> Self {
        Self {
            client,
            path: path.map_err(|e| e.to_string()),
            options: RequestOptions::default(),
            query,
            first_query: Vec::new(),
            limit: None,
            max_limit: MAX_PAGE_LIMIT,
            order: None,
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

    /// A list whose pages may hold up to `max` items, requested `default` at a time.
    pub(crate) fn large_pages(mut self, max: u32, default: u32) -> Self {
        self.max_limit = max;
        self.limit = Some(default.clamp(1, max));
        self
    }

    /// Requests pages of `limit` items (clamped to 1–[`MAX_PAGE_LIMIT`], or to the larger
    /// maximum of `list_dataset_version_files`).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit.clamp(1, self.max_limit));
        self
    }

    /// Lists in `order` (sent with every page: the server binds cursors to it).
    pub fn order(mut self, order: Order) -> Self {
        self.order = Some(order);
        self
    }

    /// Resumes from a `next_cursor` saved earlier.
    pub fn starting_at(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Per-attempt timeout of each page request (the client's by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Deadline of each page request, all its attempts and waits (the client's by default).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.options.deadline = Some(deadline);
        self
    }

    /// Replaces the per-page options (an idempotency key is refused: lists are reads).
    pub fn options(mut self, options: RequestOptions) -> Self {
        self.options = options;
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
        let path = self.path.clone().map_err(Error::build)?;
        if self.options.idempotency_key.is_some() {
            return Err(Error::build("a list takes no Idempotency-Key"));
        }
        let mut call = Call::get(path);
        call.options = self.options.clone();
        call.query = self.query.clone();
        if self.cursor.is_none() {
            call.query.extend(self.first_query.iter().cloned());
        }
        let call = call
            .query_opt("limit", self.limit)
            .query_opt("order", self.order.map(Order::as_str))
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

impl<T: DeserializeOwned + MaybeSend + 'static> Pager<T> {
    /// The remaining items one by one, as a `futures_core::Stream` of `Result<T>` (natively
    /// `Send`, so it can be consumed in a spawned task). Pages are fetched one at a time, when
    /// the previous one is used up. The stream ends after the last item or after the first
    /// error, which it yields (a failed page stays where it was in the pager, but the stream
    /// does not retry it: the call already did, within its deadline).
    pub fn into_stream(self) -> PagerStream<T> {
        PagerStream {
            pager: Some(self),
            pending: None,
            buffer: VecDeque::new(),
        }
    }
}

type PageFuture<T> = BoxFuture<'static, (Pager<T>, Result<Option<Page<T>>>)>;

/// The items of a [`Pager`] as a stream ([`Pager::into_stream`]).
pub struct PagerStream<T> {
    /// The pager, when no page request is in flight; `None` once the stream has ended.
    pager: Option<Pager<T>>,
    /// The page request in flight; it hands the pager back with its result.
    pending: Option<PageFuture<T>>,
    /// Items of the last page not yet yielded (at most one page).
    buffer: VecDeque<T>,
}

// Nothing in the stream is pinned in place: the in-flight future is boxed.
impl<T> Unpin for PagerStream<T> {}

impl<T> fmt::Debug for PagerStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagerStream")
            .field("pager", &self.pager)
            .field("fetching", &self.pending.is_some())
            .field("buffered", &self.buffer.len())
            .finish()
    }
}

impl<T: DeserializeOwned + MaybeSend + 'static> futures_core::Stream for PagerStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.buffer.pop_front() {
                return Poll::Ready(Some(Ok(item)));
            }
            if let Some(fut) = this.pending.as_mut() {
                let (pager, result) = match fut.as_mut().poll(cx) {
                    Poll::Ready(r) => r,
                    Poll::Pending => return Poll::Pending,
                };
                this.pending = None;
                match result {
                    // An empty page that is not the last one: fetch the next.
                    Ok(Some(page)) => {
                        this.buffer.extend(page.items);
                        this.pager = Some(pager);
                    }
                    Ok(None) => return Poll::Ready(None),
                    Err(e) => return Poll::Ready(Some(Err(e))),
                }
                continue;
            }
            match this.pager.take() {
                Some(mut pager) if !pager.is_done() => {
                    this.pending = Some(Box::pin(async move {
                        let result = pager.next_page().await;
                        (pager, result)
                    }));
                }
                _ => return Poll::Ready(None),
            }
        }
    }
}
