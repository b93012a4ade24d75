//! The bulletin board: `/board/{topic}` (live: posts appear and vanish for
//! every viewer at once), `/board/{topic}/admin` (delete posts, reset the
//! topic, refuse new posts for a while), `/board/{topic}/qr.svg` (the topic's address as a QR code, for
//! the slide). `/board` and unknown topics lead to the default topic.

use std::collections::VecDeque;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, PreEscaped, html};
use owl_runtime::{Message, Pid, Process};
use owl_system::board::{
    self, Board, BoardEvent, DEFAULT_TOPIC, FieldErrors, MAX_AUTHOR_CHARS, MAX_TEXT_CHARS, Post,
    PostError, SaveOutcome, TOPICS, Topic,
};
use owl_system::math::Client;

use crate::error::WebError;
use crate::guards::AdminForm;
use crate::live::{self, ClientEvent, LiveConnect, LiveView};
use crate::topic::{LiveTopic, PageTopic};
use crate::{Web, layout, visitor};

/// `GET /board`.
pub(crate) async fn index() -> Redirect {
    Redirect::to(&format!("/board/{DEFAULT_TOPIC}"))
}

/// The topics as tabs, each with its number of posts (as of a few seconds
/// ago: see [`board::COUNTS_MAX_AGE`]) when they could be counted.
async fn topic_nav(web: &Web, current: &str) -> Markup {
    let counts = web.services.board.recent_counts().await.unwrap_or_default();
    let count_of = |slug: &str| counts.iter().find(|(s, _)| *s == slug).map(|(_, n)| *n);
    html! {
        nav.topics aria-label="topics" {
            @for t in TOPICS {
                a href=(format!("/board/{}", t.slug))
                    aria-current=[(t.slug == current).then_some("page")] {
                    (t.slug)
                    @if let Some(n) = count_of(t.slug) {
                        span.count title="posts" { (super::format::thousands(n)) }
                    }
                }
            }
        }
    }
}

/// `GET /board/{topic}`.
pub(crate) async fn topic(
    State(web): State<Web>,
    headers: HeaderMap,
    PageTopic(topic): PageTopic,
) -> Response {
    let main = html! {
        div hx-ext="ws,morph" ws-connect=(format!("/live/board/{}", topic.slug)) {
            (topic_nav(&web, topic.slug).await)
            div.board-head {
                div {
                    h1 { (topic.question) }
                    p #live-state .live-state aria-live="polite" { "connecting…" }
                }
                img.qr.qr-head src=(format!("/board/{}/qr.svg", topic.slug)) alt="QR code of this page" width="240" height="240";
            }
            (first_paint(&web, topic).await)
        }
    };
    let mut response = layout::page("Board", "/board", main).into_response();
    visitor::give_cookie(&web, &headers, &mut response);
    response
}

/// The posts region as the live page will show it, rendered into the first
/// HTML (LiveView's dead render): a client without JavaScript, a link
/// preview and a slow phone's first paint all see the newest posts. If
/// they cannot be read now, the live connection loads them.
async fn first_paint(web: &Web, topic: &'static Topic) -> Markup {
    let board = web.services.board.clone();
    let mut page = BoardPage::new(board.clone(), topic, Client::named("first paint"));
    if let Ok(posts) = board.list(topic.slug, None, LIVE_POSTS).await {
        for post in posts {
            page.add(post);
        }
        page.loaded = true;
    }
    page.render()
}

/// `GET /live/board/{topic}`.
pub(crate) async fn live(
    State(web): State<Web>,
    LiveTopic(topic): LiveTopic,
    connect: LiveConnect,
) -> Response {
    let (board, client) = (web.services.board.clone(), connect.client.clone());
    live::upgrade(
        connect,
        &web,
        &format!("/board/{}", topic.slug),
        move || BoardPage::new(board.clone(), topic, client.clone()),
    )
}

/// Asks the session to load the posts (off the schedulers) once mounted.
struct LoadPosts;

/// Posts a live page shows; older ones are a link away. Bounded so that a
/// page's first frame stays small whatever the posts hold (30 posts of
/// 2,000 escaped quotes are ~370 KB; see the frame-size test).
pub(crate) const LIVE_POSTS: usize = 30;

/// What changed on a page since its last frame.
#[derive(Default)]
struct Changes {
    /// Send the whole region (first load, reset, a post out of order).
    whole: bool,
    /// The form or its notice changed.
    form: bool,
    /// Posts added at the top, oldest first.
    added: Vec<i64>,
    /// Posts to take off the page.
    removed: Vec<i64>,
}

/// A page's session state.
struct BoardPage {
    board: Board,
    topic: &'static Topic,
    client: Client,
    posts: VecDeque<Post>,
    loaded: bool,
    /// What the form shows: kept after a failure, cleared after a success.
    text: String,
    author: String,
    errors: FieldErrors,
    flash: Option<String>,
    /// Saves in flight: their process, and what they carry.
    saving: Vec<(Pid, String, String)>,
    /// Bumped when the form is to be emptied (the page's script watches it).
    cleared: u64,
    /// What the next frame must carry.
    changes: Changes,
}

impl BoardPage {
    fn new(board: Board, topic: &'static Topic, client: Client) -> BoardPage {
        BoardPage {
            board,
            topic,
            client,
            posts: VecDeque::new(),
            loaded: false,
            text: String::new(),
            author: String::new(),
            errors: FieldErrors::default(),
            flash: None,
            saving: Vec::new(),
            cleared: 0,
            changes: Changes::default(),
        }
    }

    /// Shows `post` where its id puts it, newest first; the oldest shown
    /// post makes way beyond [`LIVE_POSTS`].
    fn add(&mut self, post: Post) {
        if self.posts.iter().any(|p| p.id == post.id) {
            return;
        }
        let at = self
            .posts
            .iter()
            .position(|p| p.id < post.id)
            .unwrap_or(self.posts.len());
        if at == 0 {
            self.changes.added.push(post.id);
        } else {
            // Out of order (another node's post committed earlier):
            // rare enough to send the whole list.
            self.changes.whole = true;
        }
        self.posts.insert(at, post);
        while self.posts.len() > LIVE_POSTS {
            let Some(old) = self.posts.pop_back() else {
                break;
            };
            match self.changes.added.iter().position(|id| *id == old.id) {
                Some(i) => {
                    self.changes.added.remove(i);
                }
                None => self.changes.removed.push(old.id),
            }
        }
    }

    fn remove(&mut self, id: i64) {
        let before = self.posts.len();
        self.posts.retain(|p| p.id != id);
        if self.posts.len() == before {
            return;
        }
        match self.changes.added.iter().position(|a| *a == id) {
            Some(i) => {
                self.changes.added.remove(i);
            }
            None => self.changes.removed.push(id),
        }
    }

    fn form(&self) -> Markup {
        let field_error = |e: Option<&'static str>| html! { @if let Some(e) = e { span.field-error role="alert" { (e) } } };
        html! {
            div #board-form-area hx-swap-oob="morph" {
                form #board-form ws-send autocomplete="off" data-cleared=(self.cleared) {
                    input type="hidden" name="event" value="post";
                    label for="post-text" { "Your answer" }
                    textarea #post-text name="text" rows="3" maxlength=(MAX_TEXT_CHARS) required { (self.text) }
                    (field_error(self.errors.text))
                    label for="post-author" { "Your name" }
                    input #post-author name="author" type="text" maxlength=(MAX_AUTHOR_CHARS) value=(self.author) required;
                    (field_error(self.errors.author))
                    button type="submit" { @if self.saving.is_empty() { "Post" } @else { "Posting…" } }
                }
                p #live-notice .live-notice role="status" { @if let Some(f) = &self.flash { (f) } }
            }
        }
    }

    /// The link to the posts older than those shown.
    fn older_link(&self) -> Markup {
        html! {
            p #board-older hx-swap-oob="morph" {
                @if self.posts.len() == LIVE_POSTS {
                    @if let Some(last) = self.posts.back() {
                        a href=(format!("/board/{}/older?before={}", self.topic.slug, last.id)) { "Older posts" }
                    }
                }
            }
        }
    }

    async fn post(&mut self, ctx: &mut Process, text: &str, author: &str) {
        self.text = text.chars().take(MAX_TEXT_CHARS + 100).collect();
        self.author = author.chars().take(MAX_AUTHOR_CHARS + 20).collect();
        self.errors = FieldErrors::default();
        self.flash = None;
        match self
            .board
            .start_save(ctx, &self.client, self.topic.slug, text, author)
            .await
        {
            Ok(pid) => self
                .saving
                .push((pid, self.text.clone(), self.author.clone())),
            Err(PostError::Invalid(errors)) => self.errors = errors,
            Err(PostError::TooOften(wait)) => {
                self.flash = Some(format!(
                    "You are posting too often; try again in {} s.",
                    wait.as_secs() + 1
                ));
            }
            Err(PostError::AddressTooOften(wait)) => {
                self.flash = Some(format!(
                    "Too many posts from your network (everyone on it together); try again in {} s.",
                    wait.as_secs() + 1
                ));
            }
            Err(other) => {
                tracing::warn!(target: "owl::board", error = %other, "a post was not started");
                self.flash = Some(board::SAVE_FAILED.into());
            }
        }
    }
}

impl LiveView for BoardPage {
    fn mount(&mut self, ctx: &mut Process) {
        ctx.node().join(&board::group(self.topic.slug), ctx.pid());
        let _ = ctx.pid().send_reply(LoadPosts);
    }

    fn render(&self) -> Markup {
        html! {
            div #board hx-swap-oob="morph" {
                (self.form())
                // On a phone the QR code goes under the form (the head's
                // copy is for a laptop on a projector).
                figure.qr-phone {
                    img.qr src=(format!("/board/{}/qr.svg", self.topic.slug)) alt="QR code of this page" width="200" height="200" loading="lazy";
                    figcaption.hint { "Pass it on: this page's QR code." }
                }
                @if !self.loaded { p.hint { "loading posts…" } }
                @if self.loaded && self.posts.is_empty() {
                    p #board-empty .hint { "No posts yet: be the first to answer." }
                }
                ol #posts .posts {
                    @for post in &self.posts { (post_item(post)) }
                }
                (self.older_link())
            }
        }
    }

    fn render_update(&mut self) -> Markup {
        let changes = std::mem::take(&mut self.changes);
        if changes.whole {
            return self.render();
        }
        let posts_changed = !changes.added.is_empty() || !changes.removed.is_empty();
        html! {
            @if changes.form { (self.form()) }
            @if !changes.added.is_empty() {
                p #board-empty hx-swap-oob="delete" {}
                div hx-swap-oob="afterbegin:#posts" {
                    @for post in self.posts.iter().take_while(|p| changes.added.contains(&p.id)) {
                        (post_item(post))
                    }
                }
            }
            @for id in &changes.removed {
                li id=(format!("post-{id}")) hx-swap-oob="delete" {}
            }
            @if posts_changed { (self.older_link()) }
        }
    }

    async fn handle_event(&mut self, ctx: &mut Process, event: ClientEvent) -> bool {
        if event.name != "post" {
            return false;
        }
        let (text, author) = (
            event.field("text").to_string(),
            event.field("author").to_string(),
        );
        self.post(ctx, &text, &author).await;
        self.changes.form = true;
        true
    }

    async fn handle_info(&mut self, _ctx: &mut Process, msg: Message) -> bool {
        let msg = match msg.downcast::<LoadPosts>() {
            Ok(LoadPosts) => {
                match self.board.list(self.topic.slug, None, LIVE_POSTS).await {
                    Ok(posts) => {
                        for post in posts {
                            self.add(post);
                        }
                    }
                    Err(e) => self.flash = Some(format!("The posts could not be read: {e}")),
                }
                self.loaded = true;
                self.changes.whole = true;
                return true;
            }
            Err(other) => other,
        };
        let msg = match msg.downcast::<BoardEvent>() {
            Ok(BoardEvent::Posted(post)) if post.topic == self.topic.slug => {
                self.add(post);
                return true;
            }
            Ok(BoardEvent::Deleted { id, .. }) => {
                self.remove(id);
                return true;
            }
            Ok(BoardEvent::Reset { topic }) if topic == self.topic.slug => {
                self.posts.clear();
                self.changes.whole = true;
                return true;
            }
            Ok(_) => return false,
            Err(other) => other,
        };
        let Ok((pid, outcome)) = Board::settle(msg) else {
            return false;
        };
        let Some(at) = self.saving.iter().position(|(p, ..)| *p == pid) else {
            return false;
        };
        let (_, text, author) = self.saving.remove(at);
        self.changes.form = true;
        match outcome {
            SaveOutcome::Saved(post) => {
                self.add(post);
                self.text.clear();
                self.cleared += 1;
                self.flash = None;
            }
            SaveOutcome::Failed(reason) => {
                tracing::warn!(target: "owl::board", %reason, "a post was not saved");
                self.text = text;
                self.author = author;
                self.flash = Some(board::save_failed(&reason));
            }
        }
        true
    }
}

/// One post as a page lists it.
fn post_item(post: &Post) -> Markup {
    html! {
        li id=(format!("post-{}", post.id)) {
            p.post-text dir="auto" { (multiline(&post.text)) }
            p.post-author {
                "— " bdi { (post.author) } " · "
                time datetime=(post.inserted_at) { (super::format::utc_minute(post.inserted_at)) }
            }
        }
    }
}

/// Text with its line breaks kept (escaped by maud, then joined with `<br>`).
fn multiline(text: &str) -> Markup {
    html! {
        @for (i, line) in text.split('\n').enumerate() {
            @if i > 0 { br; }
            (line)
        }
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct Before {
    before: Option<i64>,
}

/// `GET /board/{topic}/older?before=ID`: a page of older posts.
pub(crate) async fn older(
    State(web): State<Web>,
    PageTopic(topic): PageTopic,
    Query(q): Query<Before>,
) -> Response {
    let posts = web
        .services
        .board
        .list(topic.slug, q.before, board::PAGE)
        .await;
    let main = html! {
        (topic_nav(&web, topic.slug).await)
        h1 { (topic.question) }
        @match &posts {
            Ok(posts) => {
                ol.posts { @for post in posts {
                    li { p.post-text { (multiline(&post.text)) } p.post-author { "— " (post.author) } }
                } }
                @if posts.len() == board::PAGE { @if let Some(last) = posts.last() {
                    p { a href=(format!("/board/{}/older?before={}", topic.slug, last.id)) { "Older posts" } }
                } }
            }
            Err(e) => p.live-notice { "The posts could not be read: " (e.to_string()) },
        }
        p { a href=(format!("/board/{}", topic.slug)) { "Back to the live board" } }
    };
    layout::page("Board", "/board", main).into_response()
}

/// `GET /board/{topic}/admin`: every post with a Delete button, Reset, and
/// the board's read-only switch.
pub(crate) async fn admin(State(web): State<Web>, PageTopic(topic): PageTopic) -> Response {
    let board = &web.services.board;
    let posts = board.list(topic.slug, None, 1_000).await;
    let read_only = board.read_only().await;
    let csrf = web.auth.csrf();
    let action = |what: &str| format!("/board/{}/admin/{what}", topic.slug);
    let main = html! {
        (topic_nav(&web, topic.slug).await)
        h1 { "Moderate: " (topic.question) }
        form method="post" action=(action("reset")) {
            input type="hidden" name="csrf" value=(csrf);
            button.danger type="submit" { "Reset board" }
        }
        @match read_only {
            Ok(on) => form #read-only method="post" action=(action("read-only")) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="on" value=(if on { "false" } else { "true" });
                p { @if on {
                    strong { "Read-only: " } "the board refuses new posts on every node \
                        that shares its database. Deleting still works. "
                    button type="submit" { "Accept posts again" }
                } @else {
                    "The board accepts posts. "
                    button type="submit" { "Refuse new posts" }
                } }
            },
            Err(e) => p.live-notice { "The board's settings could not be read: " (e.to_string()) },
        }
        @match &posts {
            Ok(posts) => ol.posts { @for post in posts {
                li id=(format!("post-{}", post.id)) {
                    p.post-text { (multiline(&post.text)) }
                    p.post-author { "— " (post.author) " · #" (post.id) }
                    form method="post" action=(action(&format!("delete/{}", post.id))) {
                        input type="hidden" name="csrf" value=(csrf);
                        button.danger type="submit" { "Delete post" }
                    }
                }
            } },
            Err(e) => p.live-notice { "The posts could not be read: " (e.to_string()) },
        }
    };
    layout::page("Moderate", "/board", main).into_response()
}

/// A moderation step the database did not take.
fn not_done(what: &'static str, e: impl std::fmt::Display) -> WebError {
    WebError::page(StatusCode::SERVICE_UNAVAILABLE, what, e.to_string())
}

fn back_to_admin(topic: &Topic) -> Redirect {
    Redirect::to(&format!("/board/{}/admin", topic.slug))
}

/// `POST /board/{topic}/admin/delete/{id}`.
pub(crate) async fn delete(
    State(web): State<Web>,
    PageTopic(topic): PageTopic,
    Path((_, id)): Path<(String, i64)>,
    AdminForm(_): AdminForm<serde::de::IgnoredAny>,
) -> Result<Redirect, WebError> {
    web.services
        .board
        .delete(&web.services.node, Some(topic.slug), id)
        .await
        .map_err(|e| not_done("Not deleted", e))?;
    Ok(back_to_admin(topic))
}

/// `POST /board/{topic}/admin/reset`.
pub(crate) async fn reset(
    State(web): State<Web>,
    PageTopic(topic): PageTopic,
    AdminForm(_): AdminForm<serde::de::IgnoredAny>,
) -> Result<Redirect, WebError> {
    web.services
        .board
        .reset(&web.services.node, topic.slug)
        .await
        .map_err(|e| not_done("Not reset", e))?;
    Ok(back_to_admin(topic))
}

/// The read-only form: `on=true` refuses new posts, `on=false` accepts them.
#[derive(serde::Deserialize)]
pub(crate) struct ReadOnlyForm {
    on: bool,
}

/// `POST /board/{topic}/admin/read-only`.
pub(crate) async fn read_only(
    State(web): State<Web>,
    PageTopic(topic): PageTopic,
    AdminForm(form): AdminForm<ReadOnlyForm>,
) -> Result<Redirect, WebError> {
    web.services
        .board
        .set_read_only(form.on)
        .await
        .map_err(|e| not_done("Not switched", e))?;
    Ok(back_to_admin(topic))
}

/// `GET /board/{topic}/qr.svg`: the topic's public address as a QR code.
pub(crate) async fn qr(State(web): State<Web>, LiveTopic(topic): LiveTopic) -> Response {
    let url = format!("{}/board/{}", web.public_url, topic.slug);
    match qrcode::QrCode::new(url.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .build();
            let mut response = PreEscaped(svg).into_string().into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            );
            response
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("no QR code: {e}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use owl_system::board::BoardConfig;

    fn page() -> BoardPage {
        let board = Board::new(BoardConfig {
            database: "unused.db".into(),
            database_url: None,
            rate_posts: 5,
            rate_posts_per_address: 100,
            rate_window: std::time::Duration::from_secs(10),
        });
        let topic = Board::topic(board::DEFAULT_TOPIC).unwrap();
        BoardPage::new(board, topic, Client::named("test"))
    }

    fn worst_post(id: i64) -> Post {
        Post {
            id,
            topic: board::DEFAULT_TOPIC.into(),
            // Every character escapes to six.
            text: "\"".repeat(MAX_TEXT_CHARS),
            author: "\"".repeat(MAX_AUTHOR_CHARS),
            inserted_at: 0,
        }
    }

    /// The biggest page the board can send is far below what a live
    /// socket takes, however the posts are made.
    #[test]
    fn the_fullest_board_fits_one_frame() {
        let mut view = page();
        view.loaded = true;
        for id in 1..=100 {
            view.add(worst_post(id));
        }
        assert_eq!(view.posts.len(), LIVE_POSTS);
        let whole = view.render().into_string();
        assert!(
            whole.len() < live::MAX_OUT_FRAME / 2,
            "{} bytes",
            whole.len()
        );
    }

    /// Once a page is up, a new post costs that post, and the post it
    /// pushes off the page its removal — not the whole list again.
    #[test]
    fn a_new_post_is_sent_as_a_change() {
        let mut view = page();
        view.loaded = true;
        for id in 1..=LIVE_POSTS as i64 {
            view.add(worst_post(id));
        }
        let _ = view.render_update();
        view.add(worst_post(1000));
        let change = view.render_update().into_string();
        assert!(change.contains("afterbegin:#posts") && change.contains("post-1000"));
        assert!(
            change.contains(r#"<li id="post-1" hx-swap-oob="delete">"#),
            "{change}"
        );
        assert!(
            !change.contains("post-2\""),
            "untouched posts are not sent again"
        );
        assert!(change.len() < 16 * 1024, "{} bytes", change.len());
        // A deletion is one element.
        view.remove(1000);
        let change = view.render_update().into_string();
        assert!(change.contains(r#"<li id="post-1000" hx-swap-oob="delete">"#));
        assert!(change.len() < 1024, "{change}");
    }
}
