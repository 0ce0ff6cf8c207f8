// Renders every ```mermaid block (a <pre class="mermaid"> written by
// mdbook-mermaid) and keeps the diagrams in step with mdBook's theme.
//
// Replaces the script mdbook-mermaid 0.17 ships, which decides light or dark
// once, then reloads the page when one of the five named theme buttons is
// clicked. It has no listener on "Auto" (button id mdbook-theme-default_theme)
// and none for the operating system switching between light and dark, so in
// both cases the page turns dark and the diagrams stay light, or the reverse.
//
// Here the source of truth is the theme class that mdBook's book.js puts on
// <html> (light, rust, coal, navy, ayu) for every path: a button, "Auto"
// resolving through prefers-color-scheme, or a later change of that media
// query. A MutationObserver on the class attribute re-renders the diagrams in
// place whenever light flips to dark or back; no reload.
//
// State for tests and for anyone debugging a page, on <html>:
//   data-mermaid-theme   the mermaid theme the diagrams were last drawn in
//   data-mermaid-status  "rendering" | "done"
// and on a <pre class="mermaid"> that failed: data-mermaid-error (the message).
(() => {
    const darkThemes = ['coal', 'navy', 'ayu'];
    const html = document.documentElement;
    const diagrams = Array.from(document.querySelectorAll('pre.mermaid'));
    if (diagrams.length === 0) {
        return;
    }
    // mermaid replaces the block's content with the SVG; keep the source to
    // draw it again in another theme.
    const sources = diagrams.map((pre) => pre.innerHTML);

    const wantedTheme = () =>
        darkThemes.some((t) => html.classList.contains(t)) ? 'dark' : 'default';

    let drawn = null; // theme of the diagrams on screen
    let queue = Promise.resolve();

    async function draw(theme) {
        html.dataset.mermaidStatus = 'rendering';
        // Natural size, not shrunk to the column: a wide diagram scrolls
        // sideways (book.css) and its labels stay as large as the text.
        const natural = { useMaxWidth: false };
        mermaid.initialize({
            startOnLoad: false,
            theme,
            flowchart: natural,
            sequence: natural,
            state: natural,
            er: natural,
            class: natural,
        });
        // One diagram at a time, so a syntax error is reported against the
        // diagram that has it and does not stop the others from rendering.
        for (const [i, pre] of diagrams.entries()) {
            pre.removeAttribute('data-processed');
            pre.removeAttribute('data-mermaid-error');
            pre.innerHTML = sources[i];
            try {
                await mermaid.run({ nodes: [pre] });
            } catch (e) {
                const message = (e && (e.message || e.str)) || String(e);
                pre.dataset.mermaidError = message;
                console.error(
                    `mermaid: diagram ${i + 1} of ${diagrams.length} on this page failed to render: ${message}`,
                );
            }
        }
        drawn = theme;
        html.dataset.mermaidTheme = theme;
    }

    function follow() {
        // Chained, so a theme change during a render waits for it, then
        // compares against what is on screen.
        queue = queue.then(async () => {
            const theme = wantedTheme();
            if (theme !== drawn) {
                await draw(theme);
            }
            if (wantedTheme() === drawn) {
                html.dataset.mermaidStatus = 'done';
            }
        });
        return queue;
    }

    new MutationObserver(follow).observe(html, {
        attributes: true,
        attributeFilter: ['class'],
    });
    follow();
})();
