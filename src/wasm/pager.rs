//! `ListIterator`: the async iterator every list operation returns.
//!
//! It wraps the core's [`Pager`] (lazy, cursor-following, loop-safe) behind a type-erased
//! [`PageSource`], buffers one page and hands out items through `next()`, so
//! `for await (const run of client.listRuns())` walks every page. `nextPage()` gives whole
//! pages, `all()` collects the rest, and `cursor` saves the position.
//!
//! `Symbol.asyncIterator` cannot be named by wasm-bindgen, so the first iterator created sets
//! it on the class prototype to the built-in `Object.prototype.valueOf`, which returns `this`
//! (no JS shim, no `eval`, nothing a bundler could tree-shake away).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::{Array, Object, Reflect};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::error::{invalid_argument, to_js_error};
use super::signal::with_signal;
use super::to_js;
use crate::pagination::Pager;
use crate::transport::LocalBoxFuture;

/// One page encoded for JS: the items and the next cursor.
type JsPage = (Vec<JsValue>, Option<String>);

/// A pager with its item type erased.
pub(crate) trait PageSource {
    fn next_page(&mut self) -> LocalBoxFuture<'_, Result<Option<JsPage>, JsValue>>;
}

impl<T: DeserializeOwned + Serialize + 'static> PageSource for Pager<T> {
    fn next_page(&mut self) -> LocalBoxFuture<'_, Result<Option<JsPage>, JsValue>> {
        Box::pin(async move {
            match Pager::next_page(self).await {
                Ok(Some(page)) => {
                    let items = page
                        .items
                        .iter()
                        .map(|i| to_js(i))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Some((items, page.next_cursor)))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(to_js_error(&e)),
            }
        })
    }
}

struct State {
    /// `None` while a page is being fetched.
    source: Option<Box<dyn PageSource>>,
    buffer: VecDeque<JsValue>,
    cursor: Option<String>,
    done: bool,
    signal: Option<web_sys::AbortSignal>,
}

/// The async iterator of a list operation (typed as `ListIterator<T>` in TypeScript).
#[wasm_bindgen(skip_typescript)]
pub struct ListIterator {
    state: Rc<RefCell<State>>,
}

impl std::fmt::Debug for ListIterator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListIterator").finish_non_exhaustive()
    }
}

thread_local! {
    static PROTOTYPE_READY: Cell<bool> = const { Cell::new(false) };
}

/// Makes a `ListIterator` over `pager` for JS.
pub(crate) fn list_iterator<T: DeserializeOwned + Serialize + 'static>(
    pager: Pager<T>,
    signal: Option<web_sys::AbortSignal>,
) -> JsValue {
    let it = ListIterator {
        state: Rc::new(RefCell::new(State {
            source: Some(Box::new(pager)),
            buffer: VecDeque::new(),
            cursor: None,
            done: false,
            signal,
        })),
    };
    let js = JsValue::from(it);
    if !PROTOTYPE_READY.with(Cell::get) {
        let proto = Object::get_prototype_of(&js);
        let value_of =
            Reflect::get(&Object::new(), &"valueOf".into()).unwrap_or(JsValue::UNDEFINED);
        if Reflect::set(&proto, &js_sys::Symbol::async_iterator(), &value_of).unwrap_or(false) {
            PROTOTYPE_READY.with(|r| r.set(true));
        }
    }
    js
}

/// Fetches the next page into the state; `Ok(false)` at the end.
async fn fill(state: &Rc<RefCell<State>>) -> Result<Option<JsPage>, JsValue> {
    let (mut source, signal) = {
        let mut s = state.borrow_mut();
        if s.done {
            return Ok(None);
        }
        let source = s.source.take().ok_or_else(|| {
            invalid_argument("a page is already being fetched; await the previous call first")
        })?;
        (source, s.signal.clone())
    };
    let result = with_signal(signal.as_ref(), source.next_page()).await;
    let mut s = state.borrow_mut();
    s.source = Some(source);
    let page = result??;
    match &page {
        Some((_, next)) => {
            s.cursor = next.clone();
            s.done = next.is_none();
        }
        None => {
            s.cursor = None;
            s.done = true;
        }
    }
    Ok(page)
}

fn iter_result(value: Option<JsValue>) -> JsValue {
    let o = Object::new();
    let done = value.is_none();
    let _ = Reflect::set(&o, &"done".into(), &done.into());
    let _ = Reflect::set(&o, &"value".into(), &value.unwrap_or(JsValue::UNDEFINED));
    o.into()
}

#[wasm_bindgen]
impl ListIterator {
    /// The next item (`{ done: true }` after the last one).
    #[wasm_bindgen(skip_typescript)]
    pub fn next(&self) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            loop {
                if let Some(item) = state.borrow_mut().buffer.pop_front() {
                    return Ok(iter_result(Some(item)));
                }
                match fill(&state).await? {
                    Some((items, _)) => state.borrow_mut().buffer.extend(items),
                    None => return Ok(iter_result(None)),
                }
            }
        })
    }

    /// The rest of the current page if items are buffered, else the next page.
    #[wasm_bindgen(js_name = nextPage, skip_typescript)]
    pub fn next_page(&self) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let buffered: Vec<JsValue> = state.borrow_mut().buffer.drain(..).collect();
            let items = if buffered.is_empty() {
                match fill(&state).await? {
                    Some((items, _)) => items,
                    None => return Ok(JsValue::UNDEFINED),
                }
            } else {
                buffered
            };
            let page = Object::new();
            let arr: Array = items.into_iter().collect();
            Reflect::set(&page, &"items".into(), &arr)?;
            let cursor = state.borrow().cursor.clone();
            Reflect::set(
                &page,
                &"next_cursor".into(),
                &cursor.map(JsValue::from).unwrap_or(JsValue::NULL),
            )?;
            Ok(page.into())
        })
    }

    /// Every remaining item, in order.
    #[wasm_bindgen(skip_typescript)]
    pub fn all(&self) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let out: Array = state.borrow_mut().buffer.drain(..).collect();
            while let Some((items, _)) = fill(&state).await? {
                for i in items {
                    out.push(&i);
                }
            }
            Ok(out.into())
        })
    }

    /// The cursor of the next page, `null` at the end (and before the first page).
    #[wasm_bindgen(getter, skip_typescript)]
    pub fn cursor(&self) -> Option<String> {
        self.state.borrow().cursor.clone()
    }
}
