/** Entry point: styles, then the page. */
import "./style.css";
import { startPage } from "./app.js";

const root = document.getElementById("app");
if (root !== null) void startPage(root);
