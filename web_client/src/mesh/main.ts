/** Entry point of the mesh view: styles, whether traces can be linked (config.json), the view. */
import "../style.css";
import "./mesh.css";
import { MeshView } from "./view.js";

async function tracesAvailable(): Promise<boolean> {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    const config = (await response.json()) as Record<string, unknown>;
    return config["traces"] === true;
  } catch {
    return false;
  }
}

const root = document.getElementById("mesh");
if (root !== null) void tracesAvailable().then((traces) => new MeshView(root, traces).start());
