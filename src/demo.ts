export async function runDemo(_o: { events: number }): Promise<void> { throw new Error("demo: simulators not wired yet"); }
