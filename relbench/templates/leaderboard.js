// relbench leaderboard page: click a column header to sort its table. The first click sorts
// best first (numbers: highest first, or lowest first where the header says data-best="low";
// text: A to Z); the next click reverses. Empty cells always go last.
function sortTable(th) {
  const table = th.closest("table"), body = table.tBodies[0];
  const col = [...th.parentNode.children].indexOf(th);
  const best = th.dataset.best === "low" ? "ascending" : "descending";
  const numeric = th.dataset.type !== "text";
  let dir = th.getAttribute("aria-sort");
  dir = dir === null ? (numeric ? best : "ascending")
                     : (dir === "ascending" ? "descending" : "ascending");
  table.querySelectorAll("th").forEach(h => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", dir);
  const sign = dir === "ascending" ? 1 : -1;
  const key = td => td.dataset.v ?? td.textContent.trim();
  [...body.rows].sort((a, b) => {
    const x = key(a.cells[col]), y = key(b.cells[col]);
    if (x === "" || y === "") return (x === "") - (y === "");
    if (numeric) return sign * (parseFloat(x) - parseFloat(y));
    return sign * x.localeCompare(y);
  }).forEach(r => body.appendChild(r));
}
document.querySelectorAll("table.sortable th").forEach(th => {
  th.title = th.title || "click to sort (best first)";
  th.addEventListener("click", () => sortTable(th));
});

// Self-test (open the page with #selftest): sorts the first table by its first numeric column
// twice (after reversing it) and writes the outcome and the page width into document.title, for a headless browser.
if (location.hash === "#selftest") {
  const th = document.querySelector("table.sortable th[data-key='overall']");
  const col = th ? [...th.parentNode.children].indexOf(th) : -1;
  const values = () => [...th.closest("table").tBodies[0].rows]
    .map(r => r.cells[col].dataset.v).filter(v => v !== "").map(parseFloat);
  const ordered = (v, s) => v.every((x, i) => i === 0 || s * (x - v[i - 1]) >= 0);
  let first = false, second = false;
  if (th) {
    const body = th.closest("table").tBodies[0];
    [...body.rows].reverse().forEach(r => body.appendChild(r));  // start from worst first
    th.click(); first = ordered(values(), -1);
    th.click(); second = ordered(values(), 1);
  }
  const width = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);
  document.title = `selftest first_click_best_first=${first} second_click_reversed=${second} ` +
    `scroll_width=${width} viewport=${window.innerWidth}`;
}
