// The login: the studio's token (STEERBOT_WEB_TOKEN) for a session cookie.
import { api } from "./studio-client.js";

const form = document.getElementById("login-form");
const status = document.getElementById("status");
form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const out = await api("/api/login", { method: "POST", body: { token: document.getElementById("token").value } });
  if (out.ok) location.assign("/");
  else status.textContent = out.notice ?? "Could not log in.";
});
