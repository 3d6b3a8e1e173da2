// The studio's navigation, one list for every page. To add a page: one entry here
// ({ href, label, admin: true } for admin pages: hidden from non-admins, and the server checks
// the role on every admin request anyway); each page calls renderNav().
import { api, session } from "./studio-client.js";

export const NAV = [
  { href: "/", label: "Steer", admin: false },
  { href: "/admin-steers.html", label: "Steers", admin: true },
  { href: "/admin-training.html", label: "Training", admin: true },
  { href: "/admin-adapters.html", label: "Adapters", admin: true },
  { href: "/admin-status.html", label: "Status", admin: true },
];

/** Fills the page's <nav id="nav"> (links as textContent) and adds a logout when there is a login. */
export async function renderNav() {
  const nav = document.getElementById("nav");
  if (!nav) return;
  const s = await session();
  const ul = document.createElement("ul");
  for (const item of NAV) {
    if (item.admin && !s.admin) continue;
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = item.href;
    a.textContent = item.label;
    if (location.pathname === item.href) a.setAttribute("aria-current", "page");
    li.append(a);
    ul.append(li);
  }
  nav.replaceChildren(ul);
  if (s.loginRequired && s.user) {
    const out = document.createElement("button");
    out.type = "button";
    out.textContent = "Log out";
    out.addEventListener("click", async () => {
      await api("/api/logout", { method: "POST" });
      location.assign("/login.html");
    });
    nav.append(out);
  }
}
