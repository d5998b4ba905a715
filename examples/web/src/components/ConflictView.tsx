import { useState } from "react";

import { FORM_FIELDS, toForm, type FormField, type Recipe, type RecipeForm } from "../recipe";

/**
 * Someone saved this recipe while you were editing it. Shows your version beside the stored
 * one; keep either, or pick field by field. The caller retries as of the stored version.
 */
export function ConflictView(props: {
  mine: RecipeForm;
  current: Recipe;
  onResolve: (merged: RecipeForm) => void;
  onDiscard: () => void;
}) {
  const theirs = toForm(props.current);
  const differing = FORM_FIELDS.filter(({ field }) => props.mine[field] !== theirs[field]);
  const [choice, setChoice] = useState<Partial<Record<FormField, "mine" | "theirs">>>({});
  const merged = { ...theirs };
  for (const { field } of differing) {
    if ((choice[field] ?? "mine") === "mine") (merged as Record<string, string>)[field] = props.mine[field];
  }

  return (
    <section className="card" data-testid="conflict">
      <h2>Someone else changed this recipe</h2>
      <p>
        Version {props.current.version} was saved while you were editing. Keep your version, keep
        theirs, or choose field by field.
      </p>
      <table className="conflict">
        <thead>
          <tr>
            <th>Field</th>
            <th>Yours</th>
            <th>Stored (version {props.current.version})</th>
          </tr>
        </thead>
        <tbody>
          {FORM_FIELDS.map(({ field, label }) => {
            const differs = props.mine[field] !== theirs[field];
            const pick = choice[field] ?? "mine";
            return (
              <tr key={field} className={differs ? "differs" : ""} data-testid={`conflict-${field}`}>
                <th>{label}</th>
                {(["mine", "theirs"] as const).map((side) => (
                  <td key={side} data-testid={`conflict-${field}-${side}`}>
                    {differs && (
                      <>
                        <input
                        type="radio"
                        style={{ width: "auto" }}
                        name={field}
                        aria-label={`${label}: ${side === "mine" ? "yours" : "stored"}`}
                        data-testid={`pick-${field}-${side}`}
                        checked={pick === side}
                        onChange={() => setChoice({ ...choice, [field]: side })}
                        />{" "}
                      </>
                    )}
                    {(side === "mine" ? props.mine : theirs)[field]}
                  </td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
      <div className="actions">
        <button type="button" data-testid="keep-mine" onClick={() => props.onResolve(props.mine)}>
          Keep mine
        </button>
        <button type="button" data-testid="keep-theirs" onClick={props.onDiscard}>
          Keep theirs
        </button>
        <button type="button" data-testid="save-merge" onClick={() => props.onResolve(merged)}>
          Save my choices
        </button>
      </div>
    </section>
  );
}
