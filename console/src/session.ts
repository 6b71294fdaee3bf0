import { createContext } from "preact";
import { useContext } from "preact/hooks";

export type Session = {
  tenant: string; key_name: string; scopes: string[]; can_write: boolean; is_admin: boolean; csrf?: string | null;
};

export const SessionContext = createContext<Session | null>(null);

// Pages ask this before showing a write control; the server refuses the write anyway.
export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("no session");
  return s;
}
