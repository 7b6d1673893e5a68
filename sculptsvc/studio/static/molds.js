// Both mold halves in 3D with three.js: "together" (assembled, as they close around the
// sculpture) or "apart" (pulled open along the parting direction). Each STL is in its
// print frame; the report's print_to_mold matrix (row-major, column vectors) puts it in
// the mold frame, where +z is half A's pull direction.
import * as THREE from "three";
import { STLLoader } from "three/addons/loaders/STLLoader.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

const COLORS = { a: 0x4f86c6, b: 0xe8a33d };

export async function showMold(container) {
  const width = container.clientWidth || 480;
  const height = container.clientHeight || 360;
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  renderer.setSize(width, height);
  container.appendChild(renderer.domElement);

  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0xf4f4f2);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x777777, 2.0));
  const sun = new THREE.DirectionalLight(0xffffff, 2.0);
  sun.position.set(1, 2, 3);
  scene.add(sun);

  const moldFrame = new THREE.Group(); // mold frame: z up -> three's y up
  moldFrame.rotation.x = -Math.PI / 2;
  scene.add(moldFrame);

  const matrices = JSON.parse(container.dataset.matrices || "null");
  const loader = new STLLoader();
  const [geoA, geoB] = await Promise.all(
    [container.dataset.halfA, container.dataset.halfB].map((src) => loader.loadAsync(src)),
  );
  const halves = {};
  [["a", geoA, 0], ["b", geoB, 1]].forEach(([name, geometry, i]) => {
    geometry.computeVertexNormals();
    const mesh = new THREE.Mesh(
      geometry,
      new THREE.MeshStandardMaterial({ color: COLORS[name], roughness: 0.6, metalness: 0.0 }),
    );
    if (matrices) {
      const m = new THREE.Matrix4().set(...matrices[i].flat());
      geometry.applyMatrix4(m);
    }
    const holder = new THREE.Group();
    holder.add(mesh);
    moldFrame.add(holder);
    halves[name] = holder;
  });

  const box = new THREE.Box3().setFromObject(moldFrame);
  const size = box.getSize(new THREE.Vector3()).length();
  const camera = new THREE.PerspectiveCamera(40, width / height, size / 100, size * 10);
  const controls = new OrbitControls(camera, renderer.domElement);

  const layout = (mode) => {
    const gap = mode === "apart" ? 0.45 * size : 0; // along the pull direction (mold z)
    halves.a.position.set(0, 0, gap / 2);
    halves.b.position.set(0, 0, -gap / 2);
    const fit = new THREE.Box3().setFromObject(moldFrame);
    const centre = fit.getCenter(new THREE.Vector3());
    const extent = fit.getSize(new THREE.Vector3()).length();
    camera.position.copy(centre).add(new THREE.Vector3(0.9, 0.6, 1.2).multiplyScalar(extent));
    controls.target.copy(centre);
    controls.update();
    container.dataset.layout = mode;
    renderer.render(scene, camera);
  };
  document.querySelectorAll("button.mold-layout").forEach((button) => {
    button.addEventListener("click", () => layout(button.dataset.layout));
  });
  layout(container.dataset.layout || "apart");

  // Draw on demand (a static scene): a continuous loop would keep a software-GL browser busy.
  const draw = () => renderer.render(scene, camera);
  controls.addEventListener("change", draw);
  document.querySelectorAll("button.mold-layout").forEach((b) => b.addEventListener("click", draw));
  draw();
  container.dataset.loaded = "1";
  container.dispatchEvent(new Event("load"));
}
