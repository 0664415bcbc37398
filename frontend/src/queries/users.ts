// Users (admin: all of them; a user: itself).
import { queryOptions } from "@tanstack/react-query";
import { getUser, getUsers } from "../lib/api";

export const userKeys = {
  all: ["users"] as const,
  list: () => ["users", "list"] as const,
  detail: (userId: string) => ["users", "detail", userId] as const,
};

export const usersQuery = () =>
  queryOptions({ queryKey: userKeys.list(), queryFn: ({ signal }) => getUsers(signal), retry: false });

export const userQuery = (userId: string) =>
  queryOptions({ queryKey: userKeys.detail(userId), queryFn: ({ signal }) => getUser(userId, signal), retry: false });
