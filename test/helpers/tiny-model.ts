/** Test helper: the tiny fixture model (see `src/engine/fixture/cached-fixture-model.ts`). */
export { tinyFixtureModel as tinyModelPath } from "../../src/engine/fixture/cached-fixture-model.ts";
